import Foundation
import Synchronization

/// Writes progress as plain lines on standard error, one per step start and end, prefixed by host.
///
/// Standard output is kept for the final summary, so `frappe-deployer … > report.txt` stays clean.
public final class TerminalReporter: SyncReporting {
    private let verbose: Bool
    private let write: @Sendable (String) -> Void
    private let lock = Mutex(())

    /// `write` receives complete lines; by default they go to standard error.
    public init(verbose: Bool, write: (@Sendable (String) -> Void)? = nil) {
        self.verbose = verbose
        self.write = write ?? { line in Output.standardError(line) }
    }

    public func report(_ event: SyncEvent) {
        guard let line = Self.line(for: event, verbose: verbose) else { return }
        lock.withLock { _ in write(line) }
    }

    /// The line an event prints, or nil when it prints nothing at this verbosity.
    public static func line(for event: SyncEvent, verbose: Bool) -> String? {
        switch event {
        case .started(let site, let release, let destination, let workspace):
            return "sync \(site) (\(release)) to \(destination):\(workspace)"
        case .stepStarted(let step, let host, let detail):
            return "[\(host)] \(step.rawValue)..." + (detail.isEmpty ? "" : " \(detail)")
        case .stepFinished(let step, let host, let seconds, let detail):
            return String(format: "[%@] %@ done in %.2f s", host as NSString, step.rawValue as NSString, seconds)
                + (detail.isEmpty ? "" : ": \(detail)")
        case .stepFailed(let step, let host, let seconds):
            return String(format: "[%@] %@ FAILED after %.2f s", host as NSString, step.rawValue as NSString, seconds)
        case .output(let host, let source, let line):
            return verbose ? "[\(host)] \(source) | \(line)" : nil
        case .progress:
            return nil
        case .waiting(let host, let reason):
            return "[\(host)] waiting: \(reason)"
        case .note(let host, let text):
            return "[\(host)] \(text)"
        }
    }
}
