/// The rsync exclude rules of a sync, by tree.
///
/// Excluded paths are never deleted on the worker (the tool never passes `--delete-excluded`), so a
/// worker's own uploads, private files, logs and pid files survive every sync.
public enum ExcludeRules {
    /// Excluded from every tree: VCS data, build caches, bytecode, and logs including rotated ones
    /// (`*.log.1` … `*.log.7` and compressed rotations are not caught by `*.log`).
    public static let everywhere = [
        ".git/", "node_modules/", "__pycache__/", ".cache/", "*.pyc", "*.log", "*.log.[0-9]*",
    ]

    /// Excluded from the release: the two config links that the worker points at its own
    /// `.workers.json` files, so the main server's configuration never lands on a worker, and the
    /// release's own copies of those files beside them (made on the worker, never deleted by a sync).
    public static func release(site: String) -> [String] {
        everywhere + ["/sites/common_site_config.json", "/sites/\(site)/site_config.json",
                      "/sites/common_site_config.workers.json", "/sites/\(site)/site_config.workers.json"]
    }

    /// Excluded from deployment-data: large user files (uploads, private files and backups of every
    /// site), the main server's pid files, which describe processes of another host, and Frappe's
    /// file locks (`sites/SITE/locks/`), which belong to the jobs of the host that holds them: a
    /// worker's are never deleted while its jobs hold them, and the main server's are never sent.
    public static let deploymentData = everywhere + ["/sites/*/public/files/", "/sites/*/private/", "/config/pids/*", "/sites/*/locks/*"]

    /// How an exclude pattern reaches rsync: an exclude rule with the pattern after it
    /// (`--filter=- PATTERN`), never `--exclude=PATTERN`, which reads a lone `!` as "clear the
    /// list". So every pattern, the operator's included, is taken literally: rule syntax in it
    /// (`!`, `+ `, `- `, `merge`, `:`) cannot remove or undo a built-in exclude, and the built-in
    /// rules come first, where rsync's first match wins.
    public static func filterArgument(_ pattern: String) -> String { "--filter=- \(pattern)" }

    /// The most operator patterns a sync passes on, and their most bytes: they travel as
    /// arguments to rsync and, for the digests, in the worker's one remote command line, which
    /// Linux caps at 128 KiB.
    public static let maximumPatterns = 1_000
    public static let maximumPatternBytes = 64 * 1024

    /// Why `patterns` (the operator's, after layering) are too many to pass on; nil when they fit.
    public static func sizeProblem(_ patterns: [String]) -> String? {
        let bytes = patterns.reduce(0) { $0 + $1.utf8.count + 1 }
        guard patterns.count > maximumPatterns || bytes > maximumPatternBytes else { return nil }
        return "\(patterns.count) patterns (\(bytes) bytes) are more than a sync can pass to rsync and the worker "
            + "(at most \(maximumPatterns) patterns and \(maximumPatternBytes / 1024) KiB): use fewer, broader patterns such as 'dir/**' or '*.iso'"
    }

    /// A user pattern in the form rsync takes after `--exclude=`; the spec's config example writes
    /// them with the `--exclude=` prefix, so that prefix is accepted and removed.
    public static func normalizedPattern(_ raw: String) throws(ExcludePatternError) -> String {
        var pattern = raw
        if pattern.hasPrefix("--exclude=") { pattern.removeFirst("--exclude=".count) }
        if pattern.isEmpty { throw ExcludePatternError(problem: "'\(raw)' is an empty pattern") }
        if pattern.hasPrefix("-") {
            throw ExcludePatternError(problem: "'\(raw.escapedForMessage)' looks like an rsync option; give a pattern such as 'large_directory/**' or '*.iso'")
        }
        if pattern.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw ExcludePatternError(problem: "'\(raw.escapedForMessage)' contains a control character")
        }
        return pattern
    }
}

/// A user exclude pattern that rsync should not be given.
public struct ExcludePatternError: Error, Equatable {
    public var problem: String
}
