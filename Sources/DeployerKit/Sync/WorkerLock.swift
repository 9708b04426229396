import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The per-site lock on a worker: one sync (or rollback) at a time.
///
/// The worker records the holder and the ssh connection it runs in; a lock whose connection is gone
/// belongs to a dead sync and is taken over. A holder whose process is provably gone (killed with
/// SIGKILL; its idle connection lingers up to `SSHCommand.controlPersistSeconds`) is taken over at
/// once, unless its switch is still running on the worker. The proof is its `ProcessIdentity`:
/// same kernel boot and PID namespace as this process, and no process of that pid and start
/// time. A holder in another namespace (a container, a CI runner with the same host name) is
/// never declared dead from here: its lock goes when its connection does.
struct WorkerLock {
    let connection: WorkerConnection
    let worker: WorkerSettings
    let token: String
    let site: String
    /// `sync` or `rollback`, recorded with the lock.
    let kind: String
    /// With it, preflight also reports the digest of the verified live copy of that release.
    var liveDigest: LiveDigestRequest?
    /// SIGINT/SIGTERM end the wait for another holder at once.
    var interrupt: InterruptSignal?

    /// `user@host pid N`: who holds the lock, as shown to whoever is refused.
    static var holder: String {
        let user = ProcessInfo.processInfo.environment["USER"] ?? getpwuid(getuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid \(getuid())"
        return "\(user)@\(localHostName) pid \(getpid())"
    }

    static var localHostName: String {
        ProcessInfo.processInfo.hostName
    }

    /// Checks the worker and takes the lock, waiting up to `worker.lockWait` seconds for another
    /// holder; returns what the check found and how the lock was taken.
    func acquire() async throws -> PreflightAnswer {
        let start = ContinuousClock.now
        let identity = ProcessIdentity.current()
        var takeover: String?
        while true {
            let phase = WorkerPhase.preflight(site: site, lock: LockRequest(token: token, holder: Self.holder, kind: kind,
                                                                             origin: identity?.text, takeover: takeover),
                                              liveDigest: liveDigest)
            let reply = try await connection.ask(phase)
            if reply.exit == .ok { return PreflightAnswer(reply.facts) }
            guard reply.exit == .locked else {
                throw connection.failure(step: SyncStep.preflight.rawValue, command: reply.command, output: reply.output)
            }
            let held = LockHeld(reply.facts)
            if takeover == nil, !held.switchRunning, let token = held.token, held.origin?.isProvablyDead(observer: identity) == true {
                takeover = token
                continue
            }
            let waited = Int((ContinuousClock.now - start).seconds)
            if let signal = interrupt?.received {
                throw SyncError.interrupted(signal: signal, state: "the worker is unchanged: its lock was never taken (held by \(held.holder))")
            }
            guard waited < worker.lockWait else {
                let since = held.since.map(Self.format) ?? "an unknown time"
                throw SyncError.locked(host: worker.server, holder: held.holder, since: since, waited: waited)
            }
            // A second between asks, cut short by a signal.
            for _ in 0..<10 where interrupt?.received == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
    }

    static func format(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        return formatter.string(from: date)
    }
}
