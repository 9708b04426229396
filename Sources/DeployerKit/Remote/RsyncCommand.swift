import Foundation

/// One rsync run: local sources to one directory on the worker.
public struct RsyncTransfer: Sendable, Equatable {
    /// What is transferred, for people: "release", "deployment-data", "includes".
    public var name: String
    /// Local paths. A trailing `/` copies a directory's contents; `/./` marks where `--relative`
    /// starts the remote path.
    public var sources: [String]
    /// The directory on the worker.
    public var destination: String
    public var excludes: [String]
    /// `--relative`: keep the source path below the `/./` marker (used for include paths).
    public var relative: Bool
    /// `--link-dest`: an existing release on the worker whose identical files are hard-linked
    /// instead of sent (releases are immutable, so sharing their files is safe).
    public var linkDest: String?
    /// `--bwlimit` in KiB/s.
    public var bandwidthLimit: Int?
    /// Filter rules after the excludes (`--filter=RULE`), e.g. `+ /env/` and `- /*` to carry one
    /// subtree of the source in its own stream.
    public var filters: [String] = []
    /// `--checksum`: compare whole-file checksums instead of size and time. Pointless (and a full
    /// extra read of the source) when the destination holds nothing to compare with.
    public var checksum = true
    /// `--times`. A staged release with a base goes without (`--no-times`): rsync hard-links a
    /// basis file only when its attributes match, so a rebuild whose mtimes all moved would
    /// otherwise be copied in full on the worker although its contents are the same.
    public var times = true
    /// `--compress-choice` (zstd, lz4); nil sends uncompressed.
    public var compression: String?
    /// `--checksum-choice` (xxh128 where both sides have it); nil lets rsync negotiate.
    public var checksumChoice: String?

    public init(name: String, sources: [String], destination: String, excludes: [String], relative: Bool = false,
                linkDest: String? = nil, bandwidthLimit: Int? = nil) {
        self.name = name
        self.sources = sources
        self.destination = destination
        self.excludes = excludes
        self.relative = relative
        self.linkDest = linkDest
        self.bandwidthLimit = bandwidthLimit
    }
}

/// How an rsync run reports, besides its `--stats`.
public enum RsyncOutput: Sendable, Equatable {
    case quiet
    /// Itemized changes (`--out-format=%i %n%L`), for --verbose.
    case itemized
    /// Whole-transfer progress lines (`--info=progress2`), for a live display.
    case progress
    /// Nothing is changed (`--dry-run`); every change is itemized with its size (`%i %l %n`).
    case dryRun
}

/// Builds rsync argument arrays; pure.
public enum RsyncCommand {
    /// The spec's options (archive, compression, checksums, delete) plus what makes them safe:
    /// `--protect-args` keeps remote paths away from the remote shell, `--stats` feeds the report.
    /// Excluded paths are protected from `--delete` because `--delete-excluded` is never given.
    /// `ioTimeout` gives up after that many seconds without any I/O (rsync's `--timeout`).
    public static func arguments(_ transfer: RsyncTransfer, endpoint: SSHEndpoint, shell: String, output: RsyncOutput,
                                 checksum: Bool = true, ioTimeout: Int? = nil) -> [String] {
        var arguments = ["--archive"] + (transfer.compression.map { ["--compress", "--compress-choice=\($0)"] } ?? [])
            + (transfer.checksumChoice.map { ["--checksum-choice=\($0)"] } ?? [])
            + (transfer.times ? [] : ["--no-times"])
            + (checksum && transfer.checksum ? ["--checksum"] : [])
            + ["--delete"]
            // rrsync (a least-privilege key) refuses --protect-args: it checks every argument
            // itself, and there is no shell behind it.
            + (endpoint.restrictedKey == nil ? ["--protect-args"] : [])
            + ["--stats", "-e", shell]
        if transfer.relative { arguments.append("--relative") }
        if let base = transfer.linkDest { arguments.append("--link-dest=\(restrictedPath(base, endpoint))") }
        if let limit = transfer.bandwidthLimit { arguments.append("--bwlimit=\(limit)") }
        if let ioTimeout { arguments.append("--timeout=\(ioTimeout)") }
        switch output {
        case .quiet: break
        case .itemized: arguments.append("--out-format=%i %n%L")
        case .progress: arguments.append("--info=progress2")
        case .dryRun: arguments += ["--dry-run", "--out-format=%i %l %n"]
        }
        arguments += transfer.excludes.map(ExcludeRules.filterArgument)
        arguments += transfer.filters.map { "--filter=\($0)" }
        arguments.append("--")
        arguments += transfer.sources
        arguments.append("\(endpoint.user)@\(rsyncHost(endpoint.host)):\(transfer.destination)")
        return arguments
    }

    /// An option's path as rrsync takes it: from the root of the workspace it confines to
    /// (`/release_1`); unchanged without a least-privilege key.
    static func restrictedPath(_ path: String, _ endpoint: SSHEndpoint) -> String {
        guard endpoint.restrictedKey != nil, path.hasPrefix(endpoint.workspace + "/") else { return path }
        return String(path.dropFirst(endpoint.workspace.count))
    }

    /// rsync needs brackets around an IPv6 literal before the `:path` part.
    static func rsyncHost(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }
}

/// What one rsync run moved, from its `--stats` output.
public struct TransferStats: Sendable, Equatable {
    public var files = 0
    public var regularFilesTransferred = 0
    public var createdFiles = 0
    public var deletedFiles = 0
    public var totalFileSize: Int64 = 0
    public var bytesSent: Int64 = 0
    public var bytesReceived: Int64 = 0

    public init() {}

    /// Parses `--stats` lines; numbers may carry thousands separators ("1,234,567").
    public static func parse(_ output: String) -> TransferStats {
        var stats = TransferStats()
        for line in output.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: " ")
            let value = number(line[line.index(after: colon)...])
            switch key {
            case "Number of files": stats.files = Int(value)
            case "Number of created files": stats.createdFiles = Int(value)
            case "Number of deleted files": stats.deletedFiles = Int(value)
            case "Number of regular files transferred": stats.regularFilesTransferred = Int(value)
            case "Total file size": stats.totalFileSize = value
            case "Total bytes sent": stats.bytesSent = value
            case "Total bytes received": stats.bytesReceived = value
            default: break
            }
        }
        return stats
    }

    /// The first number after the colon, ignoring separators.
    static func number(_ text: Substring) -> Int64 {
        var digits = ""
        for character in text.drop(while: { $0 == " " }) {
            if character.isASCII && character.isNumber {
                digits.append(character)
            } else if character == "," || character == "." {
                continue
            } else {
                break
            }
        }
        return Int64(digits) ?? 0
    }

    public static func + (lhs: TransferStats, rhs: TransferStats) -> TransferStats {
        var sum = TransferStats()
        sum.files = lhs.files + rhs.files
        sum.regularFilesTransferred = lhs.regularFilesTransferred + rhs.regularFilesTransferred
        sum.createdFiles = lhs.createdFiles + rhs.createdFiles
        sum.deletedFiles = lhs.deletedFiles + rhs.deletedFiles
        sum.totalFileSize = lhs.totalFileSize + rhs.totalFileSize
        sum.bytesSent = lhs.bytesSent + rhs.bytesSent
        sum.bytesReceived = lhs.bytesReceived + rhs.bytesReceived
        return sum
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}

/// One `--info=progress2` line: `   12,345,678  45%   10.52MB/s    0:00:03 (xfr#123, to-chk=456/2000)`.
public struct RsyncProgress: Sendable, Equatable {
    public var bytes: Int64
    public var percent: Int
    /// As rsync prints it, e.g. `10.52MB/s`.
    public var rate: String
    /// Files transferred so far (`xfr#`).
    public var files: Int

    public init(bytes: Int64, percent: Int, rate: String, files: Int) {
        self.bytes = bytes
        self.percent = percent
        self.rate = rate
        self.files = files
    }

    public static func isProgressLine(_ line: String) -> Bool {
        line.hasPrefix(" ") && line.contains("%")
    }

    public static func parse(_ line: String) -> RsyncProgress? {
        guard isProgressLine(line) else { return nil }
        let words = line.split(separator: " ", omittingEmptySubsequences: true)
        guard words.count >= 3, let bytes = Int64(words[0].replacingOccurrences(of: ",", with: "")),
              words[1].hasSuffix("%"), let percent = Int(words[1].dropLast()) else { return nil }
        var files = 0
        if let range = line.range(of: "xfr#") {
            files = Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        return RsyncProgress(bytes: bytes, percent: percent, rate: String(words[2]), files: files)
    }
}

/// The compression and checksum an rsync run uses, chosen from what both sides' rsync offer
/// (`rsync --version`: "Compress list:", "Checksum list:").
public struct RsyncChoices: Sendable, Equatable {
    public var compression: String?
    public var checksum: String?

    public init(compression: String? = nil, checksum: String? = nil) {
        self.compression = compression
        self.checksum = checksum
    }

    public struct Unavailable: Error, Equatable, LocalizedError {
        public var choice: String
        public var host: String

        public init(choice: String, host: String) {
            self.choice = choice
            self.host = host
        }

        public var errorDescription: String? {
            "rsync on \(host) cannot compress with \(choice): set compress = \"auto\" (zstd, else lz4, else none) or \"off\", or install rsync 3.2.3 or newer there"
        }
    }

    /// For people: "zstd compression, xxh128 checksums".
    public var summary: String {
        (compression.map { "\($0) compression" } ?? "no compression") + ", " + (checksum.map { "\($0) checksums" } ?? "checksums as rsync negotiates")
    }

    /// The lists in `rsync --version` output, e.g. "Compress list:" -> ["zstd", "lz4", ...].
    public static func list(_ heading: String, in version: String) -> [String] {
        let lines = version.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let index = lines.firstIndex(where: { $0.hasPrefix(heading) }), index + 1 < lines.count else { return [] }
        return lines[index + 1].split(separator: " ").map(String.init).filter { !$0.hasPrefix("(") }
    }

    /// Picks from what both sides offer: never zlib (it costs more CPU than it saves here, and
    /// the setting promises zstd or lz4 or nothing).
    public static func resolve(_ setting: CompressChoice, local: [String], worker: [String], workerHost: String,
                               localChecksums: [String], workerChecksums: [String]) throws(Unavailable) -> RsyncChoices {
        let both = Set(local).intersection(worker)
        var choices = RsyncChoices()
        switch setting {
        case .off: break
        case .auto: choices.compression = ["zstd", "lz4"].first { both.contains($0) }
        case .zstd, .lz4:
            guard both.contains(setting.rawValue) else {
                throw Unavailable(choice: setting.rawValue, host: local.contains(setting.rawValue) ? workerHost : "this server")
            }
            choices.compression = setting.rawValue
        }
        if Set(localChecksums).intersection(workerChecksums).contains("xxh128") { choices.checksum = "xxh128" }
        return choices
    }
}
