import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A process named precisely enough to prove it has ended: the kernel boot, the PID namespace,
/// the pid and the process's start time (clock ticks since boot). A lock holder records this, so
/// a later sync takes the lock over only on proof that the holder is dead: a pid that this
/// process cannot see (another PID namespace, a container, another host) proves nothing.
public struct ProcessIdentity: Sendable, Equatable {
    public var boot: String
    public var pidNamespace: String
    public var pid: Int32
    public var start: String

    public init(boot: String, pidNamespace: String, pid: Int32, start: String) {
        self.boot = boot
        self.pidNamespace = pidNamespace
        self.pid = pid
        self.start = start
    }

    /// This process, or nil where /proc does not tell (then no holder is ever proved dead).
    public static func current() -> ProcessIdentity? {
        guard let boot = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              let namespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid"),
              let start = startTime(of: getpid()) else { return nil }
        return ProcessIdentity(boot: boot, pidNamespace: namespace, pid: getpid(), start: start)
    }

    /// The start time of `pid` as this process sees it (field 22 of /proc/PID/stat), nil when
    /// no such process is visible.
    static func startTime(of pid: Int32) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm) ": state is field 3, start time field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// `BOOT PIDNS PID START`, as the lock records it (no spaces inside the parts).
    public var text: String { "\(boot) \(pidNamespace) \(pid) \(start)" }

    public init?(_ text: String) {
        let parts = text.split(separator: " ").map(String.init)
        guard parts.count == 4, let pid = Int32(parts[2]) else { return nil }
        self.init(boot: parts[0], pidNamespace: parts[1], pid: pid, start: parts[3])
    }

    /// Whether this process has provably ended, as `observer` sees it: only when both run under
    /// the same kernel boot and PID namespace, and the pid has no process, or one started at
    /// another time (the pid was reused).
    public func isProvablyDead(observer: ProcessIdentity?) -> Bool {
        guard let observer, observer.boot == boot, observer.pidNamespace == pidNamespace else { return false }
        return Self.startTime(of: pid) != start
    }
}
