import Foundation

/// A failure talking to a worker, classified so the message says what to do.
public enum RemoteError: Error, Equatable, LocalizedError {
    case hostKeyUnknown(host: String, port: Int)
    case hostKeyChanged(host: String, port: Int)
    case authenticationFailed(destination: String, port: Int)
    case unreachable(host: String, port: Int, detail: String)
    /// A phase ran past its time limit on the worker and was given up (its ssh ended).
    case timedOut(step: String, host: String, seconds: Int)
    /// SIGINT or SIGTERM arrived while waiting on the worker; the wait was given up.
    case interrupted(signal: Int32)
    /// A remote phase or transfer failed; `message` is the worker's own one-line reason if it gave one.
    case failed(step: String, host: String, message: String, command: String, exitCode: Int32, standardErrorTail: [String])

    public var errorDescription: String? {
        switch self {
        case .hostKeyUnknown(let host, let port):
            let keyscan = port == 22 ? "ssh-keyscan \(host)" : "ssh-keyscan -p \(port) \(host)"
            return "host key of \(host) is not known: verify it and add it to known_hosts (\(keyscan) shows it), or pass --accept-new-host-key to trust it on first use"
        case .hostKeyChanged(let host, _):
            return "host key of \(host) has CHANGED since it was trusted: refusing to connect; if the change is expected, remove the old key with ssh-keygen -R \(host)"
        case .authenticationFailed(let destination, let port):
            return "ssh authentication as \(destination) (port \(port)) was refused: check the key in your agent or ssh config and the worker's authorized_keys"
        case .unreachable(let host, let port, let detail):
            return "cannot reach \(host) port \(port): \(detail)"
        case .timedOut(let step, let host, let seconds):
            return "\(step) did not finish on \(host) within \(seconds) s: the worker does not answer (is its Docker engine or disk hung?); raise --phase-timeout if it is only slow"
        case .interrupted(let signal):
            return "interrupted by \(signal == SIGTERM ? "SIGTERM" : "SIGINT")"
        case .failed(let step, let host, let message, _, _, _):
            return "\(step) failed on \(host): \(message)"
        }
    }

    /// The command and the tail of its standard error, for `--verbose`.
    public var details: [String] {
        guard case .failed(_, _, _, let command, let exitCode, let tail) = self else { return [] }
        return ["command: \(command)", "exit code: \(exitCode)"] + tail.map { "stderr: \($0)" }
    }

    /// Classifies a failed ssh connection attempt from its standard error.
    public static func classifyConnection(_ output: CommandOutput, endpoint: SSHEndpoint, command: Command) -> RemoteError {
        let text = output.standardErrorTail.joined(separator: "\n")
        if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || text.contains("Host key for") && text.contains("has changed") {
            return .hostKeyChanged(host: endpoint.host, port: endpoint.port)
        }
        if text.contains("Host key verification failed") || text.contains("host key is known") {
            return .hostKeyUnknown(host: endpoint.host, port: endpoint.port)
        }
        if text.contains("Permission denied") || text.contains("Too many authentication failures") {
            return .authenticationFailed(destination: endpoint.destination, port: endpoint.port)
        }
        let network = ["Connection refused", "Connection timed out", "timed out", "No route to host",
                       "Could not resolve hostname", "Network is unreachable", "Connection closed", "Connection reset"]
        if let line = output.standardErrorTail.last(where: { line in network.contains { line.contains($0) } }) {
            return .unreachable(host: endpoint.host, port: endpoint.port, detail: line.strippingSSHPrefix)
        }
        let last = output.standardErrorTail.last(where: { !$0.isEmpty })?.strippingSSHPrefix ?? "ssh exited with \(output.exitCode)"
        return .failed(step: "connect", host: endpoint.host, message: last, command: command.description,
                       exitCode: output.exitCode, standardErrorTail: output.standardErrorTail)
    }
}

extension String {
    /// "ssh: connect to host x port 22: Connection refused" -> "connect to host x port 22: Connection refused".
    var strippingSSHPrefix: String {
        hasPrefix("ssh: ") ? String(dropFirst(5)) : self
    }
}
