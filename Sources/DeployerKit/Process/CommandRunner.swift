/// A program to run: plain data, so tests can compare what would run without running it.
public struct Command: Sendable, Equatable, CustomStringConvertible {
    public static func == (lhs: Command, rhs: Command) -> Bool {
        lhs.executable == rhs.executable && lhs.arguments == rhs.arguments && lhs.standardInput == rhs.standardInput
    }

    public var executable: String
    public var arguments: [String]
    /// Text fed to standard input (a remote script); nil gives the process no input.
    public var standardInput: String?
    /// Which standard output lines to keep in `CommandOutput` (all when nil); every line still
    /// reaches the line handler.
    public var keepsLine: (@Sendable (String) -> Bool)?
    /// When the run is cancelled, stop the command's whole process group (what it started too),
    /// not only the command: for commands the operator wrote (hooks).
    public var teardownGroup = false

    public init(_ executable: String, _ arguments: [String], standardInput: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.standardInput = standardInput
    }

    /// The command as a shell line, for people reading an error.
    public var description: String { ShellQuote.commandLine([executable] + arguments) }
}

/// How a command ended and what it said. A non-zero exit is data, not an error.
public struct CommandOutput: Sendable, Equatable {
    /// The exit code, or 128 + signal number for a process killed by a signal.
    public var exitCode: Int32
    public var standardOutput: String
    /// The last lines of standard error (bounded, so a chatty process cannot exhaust memory).
    public var standardErrorTail: [String]

    public init(exitCode: Int32, standardOutput: String, standardErrorTail: [String]) {
        self.exitCode = exitCode
        self.standardOutput = standardOutput
        self.standardErrorTail = standardErrorTail
    }

    public var succeeded: Bool { exitCode == 0 }
}

/// Which stream a line came from.
public enum OutputStream: Sendable { case standardOutput, standardError }

/// The one seam through which the tool runs programs (ssh, rsync).
public protocol CommandRunning: Sendable {
    /// Runs `command` to completion, passing each output line to `onLine` as it arrives.
    func run(_ command: Command, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> CommandOutput
}

extension CommandRunning {
    public func run(_ command: Command) async throws -> CommandOutput {
        try await run(command, onLine: nil)
    }
}

/// A program could not be started at all (missing, not executable).
public struct CommandLaunchError: Error, Equatable, CustomStringConvertible {
    public var command: String
    public var reason: String
    public var description: String { "cannot run \(command): \(reason)" }
}
