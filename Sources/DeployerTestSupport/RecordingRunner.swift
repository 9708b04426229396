import DeployerKit
import Synchronization

/// A fake `CommandRunning` for unit tests of pure logic: records every command and answers from a
/// closure, so a test can prove what would run, in what order, and what stops the sequence.
public final class RecordingRunner: CommandRunning {
    private let answers: @Sendable (Command) -> CommandOutput
    private let recorded = Mutex<[Command]>([])

    public init(answers: @escaping @Sendable (Command) -> CommandOutput = { _ in .ok("") }) {
        self.answers = answers
    }

    public var commands: [Command] { recorded.withLock { $0 } }

    public func run(_ command: Command, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> CommandOutput {
        recorded.withLock { $0.append(command) }
        let output = answers(command)
        for line in output.standardOutput.split(separator: "\n") { onLine?(.standardOutput, String(line)) }
        for line in output.standardErrorTail { onLine?(.standardError, line) }
        return output
    }
}

extension CommandOutput {
    public static func ok(_ standardOutput: String) -> CommandOutput {
        CommandOutput(exitCode: 0, standardOutput: standardOutput, standardErrorTail: [])
    }

    public static func failed(_ exitCode: Int32, _ standardError: String...) -> CommandOutput {
        CommandOutput(exitCode: exitCode, standardOutput: "", standardErrorTail: standardError)
    }
}

extension Command {
    /// The worker-script phase this command runs (`sh -s -- PHASE …`), if it is one.
    public var scriptPhase: String? {
        guard standardInput != nil, let remote = arguments.last else { return nil }
        let words = remote.split(separator: " ")
        guard words.count >= 4, words[0] == "sh", words[1] == "-s", words[2] == "--" else { return nil }
        return String(words[3])
    }
}
