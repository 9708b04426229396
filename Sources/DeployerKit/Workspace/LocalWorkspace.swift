import Foundation

/// The main server's FM layout for one site: site dir, workspace, current release, deployment-data.
public struct LocalWorkspace: Sendable, Equatable {
    public let siteName: String
    /// `BENCHES/SITE`, which holds the compose files.
    public let siteDirectory: String
    /// `BENCHES/SITE/workspace`, mounted at /workspace in FM's containers.
    public let path: String
    /// The release `frappe-bench` points at, e.g. `release_20261120_101500`.
    public let releaseName: String
    public var releasePath: String { path + "/" + releaseName }
    public var deploymentDataPath: String { path + "/deployment-data" }

    /// Finds the site's workspace under `benchesPath` and checks the parts a sync reads.
    public static func locate(benchesPath: String, siteName: String) throws(WorkspaceError) -> LocalWorkspace {
        let fm = FileManager.default
        let siteDirectory = benchesPath + "/" + siteName
        guard isDirectory(benchesPath) else { throw .benchesMissing(path: benchesPath) }
        guard isDirectory(siteDirectory) else { throw .siteMissing(site: siteName, path: siteDirectory) }
        let workspace = siteDirectory + "/workspace"
        guard isDirectory(workspace) else { throw .workspaceMissing(path: workspace) }

        let link = workspace + "/frappe-bench"
        guard let attributes = try? fm.attributesOfItem(atPath: link) else { throw .benchLinkMissing(path: link) }
        guard attributes[.type] as? FileAttributeType == .typeSymbolicLink else { throw .benchLinkNotSymlink(path: link) }
        guard let target = try? fm.destinationOfSymbolicLink(atPath: link) else { throw .benchLinkMissing(path: link) }
        // FM's link is relative and names a release beside it; anything else cannot be reproduced
        // on a worker with the same meaning.
        let name = target.hasSuffix("/") ? String(target.dropLast()) : target
        guard !name.contains("/"), name != ".", name != ".." else { throw .benchLinkOutside(path: link, target: target) }
        guard isDirectory(workspace + "/" + name) else { throw .benchLinkDangling(path: link, target: target) }
        guard InputRules.plainNameProblem(name) == nil else { throw .benchLinkOutside(path: link, target: target) }

        let data = workspace + "/deployment-data"
        guard isDirectory(data) else { throw .deploymentDataMissing(path: data) }
        // A release is a bench: its apps (frappe first), its virtualenv and its apps list.
        let release = workspace + "/" + name
        for directory in ["apps/frappe", "env"] where !isDirectory(release + "/" + directory) {
            throw .releaseNotBench(release: release, missing: directory)
        }
        let apps = release + "/sites/apps.txt"
        guard fm.fileExists(atPath: apps), !isDirectory(apps) else { throw .releaseNotBench(release: release, missing: "sites/apps.txt") }
        return LocalWorkspace(siteName: siteName, siteDirectory: siteDirectory, path: workspace, releaseName: name)
    }

    /// The worker config files `remote-worker enable` writes; a sync links the worker to them.
    public var workerConfigFiles: [String] {
        [deploymentDataPath + "/sites/common_site_config.workers.json",
         deploymentDataPath + "/sites/\(siteName)/site_config.workers.json"]
    }

    /// The fingerprint of the worker configs (size and modification second of each file, as the
    /// worker's `config_fingerprint` prints it for a release's own copies; rsync keeps both, and
    /// the copies keep the time): nil when one is missing.
    public func workerConfigFingerprint() -> String? {
        var parts: [String] = []
        for file in workerConfigFiles {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
                  let size = attributes[.size] as? Int, let date = attributes[.modificationDate] as? Date else { return nil }
            parts.append("\(size):\(Int(date.timeIntervalSince1970.rounded(.down)))")
        }
        return parts.joined(separator: " ")
    }

    /// Checks that the worker configs exist, so a worker never starts on the main server's config.
    public func checkWorkerConfigs() throws(WorkspaceError) {
        for file in workerConfigFiles where !FileManager.default.fileExists(atPath: file) {
            throw .workerConfigMissing(path: file)
        }
    }

    /// What workers must reach on the main server, read from the worker configs: the queue
    /// (`redis_queue`, default port 6379) and the database (`db_host`, `db_port` or 3306).
    /// Only host and port leave this function: a URL may carry a password.
    public func workerDependencies() throws(WorkspaceError) -> [WorkerDependency] {
        func object(_ path: String) throws(WorkspaceError) -> [String: Any] {
            guard let data = FileManager.default.contents(atPath: path),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw .workerConfigInvalid(path: path)
            }
            return object
        }
        var dependencies: [WorkerDependency] = []
        let common = try object(workerConfigFiles[0])
        if let queue = common["redis_queue"] as? String {
            guard let url = URLComponents(string: queue), let host = url.host, !host.isEmpty else {
                throw .workerConfigValue(path: workerConfigFiles[0], key: "redis_queue", problem: "is not a redis://HOST:PORT URL")
            }
            dependencies.append(WorkerDependency(name: "redis_queue", host: host, port: url.port ?? 6379))
        }
        let site = try object(workerConfigFiles[1])
        if let host = site["db_host"] as? String, !host.isEmpty {
            let port = (site["db_port"] as? Int) ?? (site["db_port"] as? String).flatMap { Int($0) } ?? 3306
            dependencies.append(WorkerDependency(name: "db_host", host: host, port: port))
        }
        return dependencies
    }

    /// Checks one include path: it must exist with the right kind and, after following symlinks,
    /// stay inside the workspace.
    public func checkInclude(_ relative: String, directory: Bool) throws(WorkspaceError) {
        let full = path + "/" + relative
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir) else {
            throw .includeMissing(path: relative, kind: directory ? "directory" : "file", workspace: path)
        }
        if isDir.boolValue != directory {
            throw .includeWrongKind(path: relative, expected: directory ? "a directory (--include-dir)" : "a file (--include-file)")
        }
        let root = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let resolved = URL(fileURLWithPath: full).resolvingSymlinksInPath().path
        guard resolved.hasPrefix(root + "/") else { throw .includeOutside(path: relative, resolved: resolved) }
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }
}

/// A service on the main server that worker services connect to, checked from the worker (TCP).
public struct WorkerDependency: Sendable, Equatable {
    /// The config key that names it (`redis_queue`, `db_host`).
    public var name: String
    public var host: String
    public var port: Int

    public init(name: String, host: String, port: Int) {
        self.name = name
        self.host = host
        self.port = port
    }

    /// `NAME@HOST:PORT`, as the worker script takes it (IPv6 hosts in brackets).
    public var argument: String { "\(name)@\(host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host):\(port)" }
}

/// Why the local workspace cannot be synced from.
public enum WorkspaceError: Error, Equatable, LocalizedError {
    case benchesMissing(path: String)
    case siteMissing(site: String, path: String)
    case workspaceMissing(path: String)
    case benchLinkMissing(path: String)
    case benchLinkNotSymlink(path: String)
    case benchLinkDangling(path: String, target: String)
    case benchLinkOutside(path: String, target: String)
    case deploymentDataMissing(path: String)
    case releaseNotBench(release: String, missing: String)
    case workerConfigMissing(path: String)
    case workerConfigInvalid(path: String)
    case workerConfigValue(path: String, key: String, problem: String)
    case includeMissing(path: String, kind: String, workspace: String)
    case includeWrongKind(path: String, expected: String)
    case includeOutside(path: String, resolved: String)

    public var errorDescription: String? {
        switch self {
        case .benchesMissing(let path):
            return "benches directory \(path) does not exist: give --benches-path (or benches_path in the config)"
        case .siteMissing(let site, let path):
            return "site \(site) has no bench directory at \(path): check the site name and --benches-path"
        case .workspaceMissing(let path):
            return "workspace \(path) does not exist: is this an FM bench deployed with releases?"
        case .benchLinkMissing(let path):
            return "\(path) is missing: deploy a release first (it must be a symlink to the current release)"
        case .benchLinkNotSymlink(let path):
            return "\(path) is not a symlink: a sync needs a release-based workspace where frappe-bench points at release_*"
        case .benchLinkDangling(let path, let target):
            return "\(path) points at \(target), which does not exist: fix the link or redeploy"
        case .benchLinkOutside(let path, let target):
            return "\(path) points at \(target), not at a release directory beside it: relink it to release_*"
        case .releaseNotBench(let release, let missing):
            return "\(release) does not look like a bench release: it has no \(missing) (a release holds apps/frappe, env/ and sites/apps.txt); point frappe-bench at a complete release"
        case .deploymentDataMissing(let path):
            return "\(path) does not exist: the workspace has no deployment data to sync"
        case .workerConfigMissing(let path):
            return "\(path) is missing: run `frappe-deployer remote-worker enable` on the main server first"
        case .workerConfigInvalid(let path):
            return "\(path) is not a JSON object: fix it, or write it again with `frappe-deployer remote-worker enable --force`"
        case .workerConfigValue(let path, let key, let problem):
            return "\(key) in \(path) \(problem): fix it, or write it again with `frappe-deployer remote-worker enable --force`"
        case .includeMissing(let path, let kind, let workspace):
            return "include \(kind) \(path) does not exist in \(workspace): include paths are relative to the workspace"
        case .includeWrongKind(let path, let expected):
            return "include \(path) is not \(expected)"
        case .includeOutside(let path, let resolved):
            return "include \(path) resolves to \(resolved), outside the workspace: only paths inside the workspace are synced"
        }
    }
}
