import Foundation

/// A digest of a release tree as rsync lists it (files and links: name, size, time, mode; the
/// release's excludes applied; directories left out, since their times move whenever something is
/// created inside). The main server's digest changes when any synced file of the release changes;
/// the worker computes its own for its copy (`worker.sh digest`). Together they let a sync keep a
/// worker's verified copy without reading it again.
public enum ReleaseDigest {
    /// The main server's digest of `plan`'s release, or nil when rsync cannot list it.
    public static func local(_ plan: SyncPlan, runner: any CommandRunning) async -> String? {
        var command = Command("/usr/bin/env", ["TZ=UTC", "LC_ALL=C", "rsync", "-a", "--list-only"]
            + plan.releaseExcludes.map(ExcludeRules.filterArgument) + ["--", plan.workspace.releasePath + "/"])
        // Only the digest is needed: the listing is hashed line by line as it streams.
        let hasher = LineHasher()
        command.keepsLine = { _ in false }
        guard let output = try? await runner.run(command, onLine: { stream, line in
            if stream == .standardOutput, !line.hasPrefix("d") { hasher.add(line) }
        }), output.succeeded else { return nil }
        return hasher.value
    }
}

/// FNV-1a over lines, safe to feed from a concurrent line handler.
final class LineHasher: @unchecked Sendable {
    private let lock = NSLock()
    private var hash: UInt64 = 0xcbf29ce484222325
    private var lines = 0

    func add(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        for byte in line.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        hash = (hash ^ 10) &* 0x100000001b3
        lines += 1
    }

    var value: String {
        lock.lock()
        defer { lock.unlock() }
        return String(hash, radix: 16) + "-\(lines)"
    }
}
