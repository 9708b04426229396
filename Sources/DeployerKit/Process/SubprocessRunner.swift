import Subprocess
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs commands with swift-subprocess, streaming both outputs line by line.
public struct SubprocessRunner: CommandRunning {
    /// Standard output kept in memory at most; rsync stats and script reports are far smaller.
    static let outputLimit = 4 * 1024 * 1024
    static let errorTailLines = 40

    public init() {}

    public func run(_ command: Command, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> CommandOutput {
        let executable: Executable = command.executable.contains("/") ? .path(.init(command.executable)) : .name(command.executable)
        var options = PlatformOptions()
        // On cancellation: SIGTERM, then SIGKILL after 5 s, so ssh and rsync can close cleanly.
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: command.teardownGroup, allowedDurationToNextStep: .seconds(5))]
        // Its own process group: a Ctrl-C at the terminal reaches the tool, which stops its children
        // at a safe point, instead of killing ssh in the middle of a switch.
        options.processGroupID = 0
        do {
            let input = try Self.inputFile(command.standardInput ?? "")
            let result = try await Subprocess.run(
                executable, arguments: Arguments(command.arguments), platformOptions: options,
                input: .fileDescriptor(input, closeAfterSpawningProcess: true), output: .sequence, error: .sequence
            ) { execution in
                async let errorTail: [String] = {
                    var tail: [String] = []
                    try await Self.lines(of: execution.standardError) { line in
                        onLine?(.standardError, line)
                        tail.append(line)
                        if tail.count > Self.errorTailLines { tail.removeFirst() }
                    }
                    return tail
                }()
                var output = ""
                try await Self.lines(of: execution.standardOutput) { line in
                    onLine?(.standardOutput, line)
                    if output.utf8.count < Self.outputLimit, command.keepsLine?(line) ?? true { output += line + "\n" }
                }
                return (output, try await errorTail)
            }
            return CommandOutput(exitCode: result.terminationStatus.shellExitCode, standardOutput: result.closureResult.0, standardErrorTail: result.closureResult.1)
        } catch let error as SubprocessError {
            throw CommandLaunchError(command: command.executable, reason: String(describing: error))
        }
    }
}

extension SubprocessRunner {
    /// Each line of `output` as it arrives (see LineSplitter): for every reader of a child's output,
    /// the tool's runner and the tests' runner of the tool.
    public static func lines(of output: SubprocessOutputSequence, _ line: (String) -> Void) async throws {
        var splitter = LineSplitter()
        for try await buffer in output {
            buffer.withUnsafeBytes { splitter.feed($0, line) }
        }
        splitter.finish(line)
    }

    /// Standard input as an unlinked temporary file, read by the child at its own pace: a child
    /// that exits without reading it all (ssh failing to connect, a refusal) can never leave the
    /// tool writing into a closed pipe (SIGPIPE) or blocked on a full one.
    static func inputFile(_ text: String) throws -> FileDescriptor {
        var template = Array("/tmp/fd-input-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { throw CommandLaunchError(command: "mkstemp", reason: String(cString: strerror(errno))) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        let file = FileDescriptor(rawValue: descriptor)
        do {
            _ = try file.writeAll(Array(text.utf8))
            _ = try file.seek(offset: 0, from: .start)
        } catch {
            try? file.close()
            throw CommandLaunchError(command: "standard input", reason: "cannot be written to /tmp: \(error)")
        }
        return file
    }
}

extension TerminationStatus {
    /// The status as a shell reports it: the exit code, or 128 + the signal's number.
    public var shellExitCode: Int32 {
        switch self {
        case .exited(let status): Int32(status)
        case .signaled(let signal): 128 + Int32(signal)
        }
    }
}
