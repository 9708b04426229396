import Foundation

/// One worker reached over one OpenSSH master connection that every step and rsync reuses.
public struct WorkerConnection: Sendable {
    public let endpoint: SSHEndpoint
    let runner: any CommandRunning
    let controlDirectory: String
    /// The worker script every phase runs, and the worker's workspace it works on.
    let script: RemoteScript
    let workspace: String
    /// The base of every phase's time limit (`WorkerPhase.timeLimit`).
    let phaseTimeout: Int
    /// SIGINT/SIGTERM received so far: a phase that may be cut off stops waiting at once.
    let signal: (@Sendable () -> Int32?)?

    /// How long the master connection may take to open (TCP, key exchange, login).
    static let connectLimit = Duration.seconds(60)
    /// How long asking the master whether it stands, or to exit, may take.
    static let controlLimit = Duration.seconds(20)

    /// Opens the master connection; a refused host key, login or network is a classified error.
    /// It waits at most `connectLimit` and stops at once on SIGINT/SIGTERM (`signal`).
    public static func open(worker: WorkerSettings, runner: any CommandRunning,
                            signal: (@Sendable () -> Int32?)? = nil) async throws -> WorkerConnection {
        let script = try RemoteScript.worker()
        // A private directory for the control socket: short enough for the 104-byte socket limit,
        // and not writable by anyone else.
        let directory = try makePrivateDirectory()
        let endpoint = SSHEndpoint(worker: worker, controlPath: directory + "/m")
        let command = SSHCommand.openMaster(endpoint)
        let output: CommandOutput
        do {
            output = try await limited(step: "connect", host: worker.server, connectLimit, signal: signal) { try await runner.run(command) }
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        guard output.succeeded else {
            try? FileManager.default.removeItem(atPath: directory)
            throw RemoteError.classifyConnection(output, endpoint: endpoint, command: command)
        }
        return WorkerConnection(endpoint: endpoint, runner: runner, controlDirectory: directory, script: script,
                                workspace: worker.workspacePath, phaseTimeout: worker.phaseTimeout, signal: signal)
    }

    /// Opens a connection to `worker`, runs `body` on it and closes it on every path out: for the
    /// commands that ask a worker one thing (history, the canary's job check, authorize).
    public static func using<T>(worker: WorkerSettings, runner: any CommandRunning,
                                _ body: (WorkerConnection) async throws -> T) async throws -> T {
        let connection = try await open(worker: worker, runner: runner)
        do {
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Runs `body` within `limit`, and (with `signal`) stops at once on SIGINT/SIGTERM: the two
    /// ways a wait ends early, as `RemoteError.timedOut` and `RemoteError.interrupted`.
    static func limited<T: Sendable>(step: String, host: String, _ limit: Duration, signal: (@Sendable () -> Int32?)?,
                                     _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await TimeLimit.run(limit, signal: signal, body)
        } catch let exceeded as TimeLimitExceeded {
            throw RemoteError.timedOut(step: step, host: host, seconds: exceeded.seconds)
        } catch let interrupted as Interrupted {
            throw RemoteError.interrupted(signal: interrupted.signal)
        }
    }

    /// Runs one phase of the worker script; a non-zero exit becomes `RemoteError.failed` carrying
    /// the script's own `error:` line.
    public func run(_ phase: WorkerPhase, step: String,
                    onLine: (@Sendable (OutputStream, String) -> Void)? = nil) async throws -> WorkerFacts {
        let reply = try await ask(phase, onLine: onLine)
        guard reply.output.succeeded else { throw failure(step: step, command: reply.command, output: reply.output) }
        return reply.facts
    }

    /// Runs one phase and returns how it ended, whatever its exit.
    /// Every phase has a time limit; those that may be cut off stop at once on SIGINT/SIGTERM.
    public func ask(_ phase: WorkerPhase, onLine: (@Sendable (OutputStream, String) -> Void)? = nil) async throws -> PhaseReply {
        let command = SSHCommand.script(endpoint, script, phase.arguments(workspace: workspace))
        let runner = self.runner
        let output = try await Self.limited(step: phase.name, host: endpoint.host, phase.timeLimit(base: phaseTimeout),
                                            signal: phase.isInterruptible ? signal : nil) {
            try await runner.run(command, onLine: onLine)
        }
        return PhaseReply(command: command, output: output)
    }

    /// Runs one rsync transfer over the master connection.
    /// Runs one rsync; returns its stats and its standard output (the itemized list of a dry run).
    public func transfer(_ transfer: RsyncTransfer, output mode: RsyncOutput, checksum: Bool = true,
                         onLine: (@Sendable (OutputStream, String) -> Void)? = nil) async throws -> (stats: TransferStats, output: String) {
        let shell: String
        do {
            shell = try SSHCommand.rsyncShell(endpoint)
        } catch {
            throw RemoteError.failed(step: "transfer \(transfer.name)", host: endpoint.host,
                                     message: "ssh argument \(error.argument) contains a single quote, which rsync -e cannot carry",
                                     command: "rsync", exitCode: 2, standardErrorTail: [])
        }
        var command = Command("rsync", RsyncCommand.arguments(transfer, endpoint: endpoint, shell: shell, output: mode, checksum: checksum,
                                                                ioTimeout: phaseTimeout))
        // Progress lines go to the display only: kept, they could crowd the stats out of memory.
        if mode == .progress {
            command.keepsLine = { line in !RsyncProgress.isProgressLine(line) }
        }
        let output = try await runner.run(command, onLine: onLine)
        guard output.succeeded else { throw failure(step: "transfer \(transfer.name)", command: command, output: output) }
        return (TransferStats.parse(output.standardOutput), output.standardOutput)
    }

    /// Whether the master connection still stands. Cleanup after a lost connection is skipped
    /// rather than waiting on a dead link (the next sync cleans up instead).
    public func isAlive() async -> Bool {
        let (runner, command) = (self.runner, SSHCommand.checkMaster(endpoint))
        return (try? await TimeLimit.run(Self.controlLimit) { try await runner.run(command) })?.succeeded ?? false
    }

    /// Closes the master connection and removes its socket directory; safe to call on any path out.
    public func close() async {
        let (runner, command) = (self.runner, SSHCommand.closeMaster(endpoint))
        _ = try? await TimeLimit.run(Self.controlLimit) { try await runner.run(command) }
        try? FileManager.default.removeItem(atPath: controlDirectory)
    }

    public func failure(step: String, command: Command, output: CommandOutput) -> RemoteError {
        if output.exitCode == 255, command.executable == "ssh" {
            // ssh's own failure (the master went away, the link dropped), not the script's.
            let classified = RemoteError.classifyConnection(output, endpoint: endpoint, command: command)
            if case .failed = classified {} else { return classified }
        }
        let reason = output.standardErrorTail.last(where: { $0.hasPrefix("error: ") }).map { String($0.dropFirst(7)) }
            ?? (command.executable == "rsync" ? Self.rsyncCause(output.standardErrorTail) : nil)
            ?? output.standardErrorTail.last(where: { !$0.trimmed.isEmpty })?.strippingSSHPrefix
            ?? "exited with status \(output.exitCode)"
        return .failed(step: step, host: endpoint.host, message: reason, command: command.description,
                       exitCode: output.exitCode, standardErrorTail: output.standardErrorTail)
    }

    /// The line that says why rsync failed: the receiving side's own error (a full disk, a
    /// permission) rather than the sender's consequence ("Broken pipe") or the closing summary.
    static func rsyncCause(_ lines: [String]) -> String? {
        if lines.contains(where: { $0.contains("is your shell clean") || $0.contains("protocol incompatibility") }) {
            return "the worker's shell printed text for a non-interactive ssh command (a .bashrc, profile or ~/.ssh/rc that "
                + "echoes), which breaks rsync's protocol: make it print nothing unless interactive (rsync: protocol version mismatch)"
        }
        let errors = lines.filter { $0.hasPrefix("rsync: ") }
        return errors.first { $0.contains("[receiver]") || $0.contains("[generator]") || $0.contains("No space left") }
            ?? errors.first { !$0.contains("Broken pipe") }
            ?? errors.first
    }

    static func makePrivateDirectory() throws -> String {
        var template = Array("/tmp/fd-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in mkdtemp(buffer.baseAddress!) }
        guard let made else {
            throw CommandLaunchError(command: "mkdtemp", reason: String(cString: strerror(errno)))
        }
        return String(cString: made)
    }
}

/// How one phase of the worker script ended: the command, its output, its exit and its facts.
public struct PhaseReply: Sendable {
    public var command: Command
    public var output: CommandOutput

    public var exit: WorkerExit? { WorkerExit(rawValue: output.exitCode) }
    public var facts: WorkerFacts { WorkerFacts(output.standardOutput) }
}
