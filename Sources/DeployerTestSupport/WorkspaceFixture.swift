import Foundation

/// How big a generated release is. `small` suits tests; `real` is LAYOUT.md's measured profile of a
/// Frappe v15 + ERPNext release after the sync's excludes (23.4k files, 575 MiB).
public struct FixtureProfile: Sendable, Equatable {
    /// Regular files in the release, besides the handful the layout itself needs.
    public var files: Int
    /// Their total size, roughly: the size mix follows LAYOUT.md's distribution.
    public var bytes: Int64

    public init(files: Int, bytes: Int64) {
        self.files = files
        self.bytes = bytes
    }

    public static let small = FixtureProfile(files: 120, bytes: 600 * 1024)
    public static let real = FixtureProfile(files: 23_400, bytes: 575 * 1024 * 1024)

    /// Parses `small`, `real`, or `FILES:MIB` (e.g. `2000:50`).
    public static func parse(_ text: String) -> FixtureProfile? {
        switch text {
        case "small": return .small
        case "real": return .real
        default:
            let parts = text.split(separator: ":")
            guard parts.count == 2, let files = Int(parts[0]), let mib = Int64(parts[1]), files > 0, mib >= 0 else { return nil }
            return FixtureProfile(files: files, bytes: mib * 1024 * 1024)
        }
    }
}

/// A main server's FM layout for one site, generated on disk (LAYOUT.md), symlinks included.
///
/// Every release carries `apps/frappe/fdtb-service.sh`, which the testbed's compose services run:
/// it writes a heartbeat naming the release it belongs to and the `redis_queue` and `db_host` it
/// reads through `frappe-bench`, so a test can see which code and which config a worker runs.
public struct WorkspaceFixture: Sendable {
    public let benchesPath: String
    public let site: String
    /// The address the worker configs point at (the main server's, as `remote-worker enable` writes).
    public let mainAddress: String

    public var siteDirectory: String { "\(benchesPath)/\(site)" }
    public var workspace: String { "\(siteDirectory)/workspace" }
    public var deploymentData: String { "\(workspace)/deployment-data" }
    public var workersRedisQueue: String { "redis://\(mainAddress):11000" }

    public init(benchesPath: String, site: String, mainAddress: String = "10.213.0.1") {
        self.benchesPath = benchesPath
        self.site = site
        self.mainAddress = mainAddress
    }

    /// Creates the site dir, deployment-data and a first release, and points frappe-bench at it.
    @discardableResult
    public static func create(benchesPath: String, site: String, release: String = "release_20261120_101500",
                              profile: FixtureProfile = .small, mainAddress: String = "10.213.0.1",
                              workerConfigs: Bool = true, jobs: Bool = false) throws -> WorkspaceFixture {
        let fixture = WorkspaceFixture(benchesPath: benchesPath, site: site, mainAddress: mainAddress)
        try fixture.makeSiteDirectory()
        try fixture.makeDeploymentData(workerConfigs: workerConfigs)
        try fixture.addRelease(release, profile: profile, seed: 1, jobs: jobs)
        try fixture.activate(release)
        return fixture
    }

    func makeSiteDirectory() throws {
        try mkdir(workspace)
        try write("\(siteDirectory)/docker-compose.yml", "services: {} # the main server's own services\n")
        try write("\(siteDirectory)/docker-compose.workers.yml", "services: {}\n")
    }

    /// `workerConfigs: false` leaves the `.workers.json` files to `remote-worker enable`.
    func makeDeploymentData(workerConfigs: Bool) throws {
        let sites = "\(deploymentData)/sites"
        try write("\(sites)/common_site_config.json", json(["redis_queue": "redis://redis-queue:6379", "redis_cache": "redis://redis-cache:6379", "socketio_port": "9000"]))
        if workerConfigs {
            try write("\(sites)/common_site_config.workers.json", json(["redis_queue": workersRedisQueue, "redis_cache": "redis://redis-cache:6379", "socketio_port": "9000"]))
        }
        try write("\(sites)/\(site)/site_config.json", json(["db_host": "global-db", "db_name": "_site_db", "db_password": "fixture-secret"]))
        if workerConfigs {
            try write("\(sites)/\(site)/site_config.workers.json", json(["db_host": mainAddress, "db_name": "_site_db", "db_password": "fixture-secret"]))
        }
        // Large user files: never synced.
        try write("\(sites)/\(site)/public/files/upload-photo.jpg", String(repeating: "u", count: 20_000))
        try write("\(sites)/\(site)/private/files/contract.pdf", String(repeating: "p", count: 20_000))
        try write("\(sites)/\(site)/private/backups/20261120_000000-database.sql.gz", String(repeating: "b", count: 20_000))
        try mkdir("\(sites)/\(site)/logs")
        try mkdir("\(sites)/\(site)/locks")
        try write("\(sites)/apps.txt", "frappe\nerpnext\n")
        try write("\(deploymentData)/config/supervisor.conf", "; supervisor config of the main server\n")
        try write("\(deploymentData)/config/nginx.conf", "# nginx config of the main server\n")
        try write("\(deploymentData)/config/pids/web.pid", "4242\n")
        try write("\(deploymentData)/logs/web.log", "web log\n")
        try write("\(deploymentData)/logs/web.log.1", "rotated web log\n")
        try write("\(deploymentData)/logs/worker.error.log.3.gz", "rotated, compressed\n")
    }

    /// Adds a release directory with the layout's links and `profile`'s generated files; `seed`
    /// decides the contents, so two releases with different seeds differ in every generated file.
    ///
    /// `incompressibleMiB` adds a file of random bytes (like the GeoIP database of a real release) that
    /// compression cannot shrink; `brokenService` makes that service exit at once, as a release whose
    /// workers crash on start would; `crashOnceService` makes it exit once in each container, on its
    /// first start (under a restart policy, it then runs with one restart counted). `jobs` makes it a release of the job world (`JobWorld`): a real
    /// virtualenv in `env/` with RQ, and the job app in `apps/fdtb_jobs`.
    public func addRelease(_ name: String, profile: FixtureProfile = .small, seed: UInt64,
                           incompressibleMiB: Int = 0, brokenService: String? = nil, crashOnceService: String? = nil, jobs: Bool = false,
                           deafService: String? = nil) throws {
        let release = "\(workspace)/\(name)"
        try mkdir(release)
        if jobs { try JobWorld.install(release: release, name: name, site: site, brokenService: brokenService, deafService: deafService) }
        // The service script the testbed's compose services run, naming its own release.
        try write("\(release)/apps/frappe/fdtb-service.sh", serviceScript(release: name, broken: brokenService, crashOnce: crashOnceService), mode: 0o755)
        if incompressibleMiB > 0 {
            var random = SplitMix(seed: seed &+ 99)
            var data = Data(count: incompressibleMiB * 1024 * 1024)
            data.withUnsafeMutableBytes { buffer in
                let words = buffer.bindMemory(to: UInt64.self)
                for index in words.indices { words[index] = random.next() }
            }
            try write("\(release)/apps/frappe/frappe/geo/GeoLite2-City.mmdb", data)
        }
        try write("\(release)/apps/frappe/frappe/__init__.py", "__version__ = \"15.0.0\"  # \(name)\n")
        try write("\(release)/apps/erpnext/erpnext/__init__.py", "__version__ = \"15.0.0\"\n")
        try write("\(release)/sites/apps.txt", "frappe\nerpnext\n")
        try write("\(release)/sites/apps.json", json(["frappe": "15.0.0", "erpnext": "15.0.0"]))
        try mkdir("\(release)/sites/\(site)")
        try mkdir("\(release)/sites/assets")
        // Relative links into deployment-data, as FM makes them.
        try symlink("../../deployment-data/sites/common_site_config.json", at: "\(release)/sites/common_site_config.json")
        for entry in ["site_config.json", "public", "private", "logs", "locks"] {
            try symlink("../../../deployment-data/sites/\(site)/\(entry)", at: "\(release)/sites/\(site)/\(entry)")
        }
        try symlink("../deployment-data/config", at: "\(release)/config")
        try symlink("../deployment-data/logs", at: "\(release)/logs")
        // Absolute links, valid inside FM's containers: assets and the venv's interpreter.
        try symlink("/workspace/frappe-bench/apps/frappe/frappe/public", at: "\(release)/sites/assets/frappe")
        try symlink("/workspace/frappe-bench/apps/erpnext/erpnext/public", at: "\(release)/sites/assets/erpnext")
        try mkdir("\(release)/env/bin")
        if !jobs { try symlink("/usr/bin/python3", at: "\(release)/env/bin/python") }
        try write("\(release)/env/bin/bench", "#!/workspace/frappe-bench/env/bin/python\nimport bench\n", mode: 0o755)
        // What the excludes must keep off the worker.
        try write("\(release)/apps/frappe/.git/HEAD", "ref: refs/heads/version-15\n")
        try write("\(release)/apps/frappe/node_modules/left-pad/index.js", "module.exports = 1\n")
        try write("\(release)/apps/frappe/frappe/__pycache__/__init__.cpython-311.pyc", "bytecode")
        try write("\(release)/apps/frappe/frappe/stray.pyc", "bytecode")
        try write("\(release)/apps/frappe/.cache/x", "cache")
        try write("\(release)/apps/frappe/build.log", "log")
        try generateFiles(in: release, profile: profile, seed: seed)
    }

    /// Points `frappe-bench` at `release` (a relative link, replaced in one rename).
    public func activate(_ release: String) throws {
        let link = "\(workspace)/frappe-bench"
        let temporary = "\(link).new"
        try? FileManager.default.removeItem(atPath: temporary)
        try symlink(release, at: temporary)
        guard rename(temporary, link) == 0 else { throw FixtureError("cannot rename \(temporary) to \(link)") }
    }

    /// Rewrites about `fraction` of a release's generated files with new content, keeping sizes.
    public func change(release: String, fraction: Double, seed: UInt64) throws -> Int {
        var random = SplitMix(seed: seed)
        var changed = 0
        let root = "\(workspace)/\(release)"
        guard let walker = FileManager.default.enumerator(atPath: root) else { return 0 }
        for case let path as String in walker where path.hasPrefix("apps/") || path.hasPrefix("env/") {
            let full = "\(root)/\(path)"
            guard !isSymlink(full), let attributes = try? FileManager.default.attributesOfItem(atPath: full),
                  attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            guard random.nextDouble() < fraction else { continue }
            let size = (attributes[.size] as? Int) ?? 0
            try write(full, Self.content(size: max(size, 16), random: &random))
            changed += 1
        }
        return changed
    }

    // MARK: - Generated files

    /// Files spread like a real release: two thirds of the bytes in env/, the rest in apps/, at
    /// depths around six, with LAYOUT.md's size mix (67% < 4 KiB, 27% 4-64 KiB, 5% 64 KiB-1 MiB, a
    /// few over 1 MiB) scaled so the total is near `profile.bytes`.
    func generateFiles(in release: String, profile: FixtureProfile, seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        var sizes: [Int] = []
        sizes.reserveCapacity(profile.files)
        for index in 0..<profile.files {
            let roll = random.nextDouble()
            let big = profile.files >= 1000 && index % (profile.files / 54 + 1) == 0
            if big { sizes.append(1_048_576 + Int(random.next() % 4_194_304)) }
            else if roll < 0.67 { sizes.append(200 + Int(random.next() % 3800)) }
            else if roll < 0.95 { sizes.append(4096 + Int(random.next() % 61_440)) }
            else { sizes.append(65_536 + Int(random.next() % 983_040)) }
        }
        let natural = sizes.reduce(0, +)
        let scale = natural > 0 ? Double(profile.bytes) / Double(natural) : 1
        let apps = ["frappe", "erpnext", "hrms"]
        for (index, rawSize) in sizes.enumerated() {
            let size = max(1, Int(Double(rawSize) * scale))
            let inEnv = index % 3 != 0
            let directory: String
            if inEnv {
                directory = "env/lib/python3.11/site-packages/pkg\(index % 97)/sub\(index % 7)/mod\(index % 5)"
            } else {
                let app = apps[index % apps.count]
                directory = "apps/\(app)/\(app)/module\(index % 41)/doctype/type\(index % 13)"
            }
            let name = inEnv && rawSize > 1_048_576 ? "lib\(index).so" : "file\(index).py"
            try write("\(release)/\(directory)/\(name)", Self.content(size: size, random: &random))
        }
    }

    /// Text-like content (compresses as code does), deterministic for a seed. Built from a 256 KiB
    /// block of words read at a random offset, so even the real-size profile writes at disk speed.
    static func content(size: Int, random: inout SplitMix) -> Data {
        var data = Data("# \(random.next())\n".utf8)
        data.reserveCapacity(size)
        while data.count < size {
            let offset = Int(random.next() % UInt64(wordBlock.count / 2))
            let take = min(size - data.count, wordBlock.count - offset)
            data.append(contentsOf: wordBlock[offset..<(offset + take)])
        }
        return data.prefix(size)
    }

    static let wordBlock: [UInt8] = {
        let words = ["def", "self", "frappe", "return", "import", "class", "doc", "None", "if", "for", "in", "_(", "):", "\n    ", "=", "get"]
        var random = SplitMix(seed: 42)
        var block: [UInt8] = []
        block.reserveCapacity(262_144 + 16)
        while block.count < 262_144 {
            block += Array(words[Int(random.next() % UInt64(words.count))].utf8)
            block.append(32)
        }
        return block
    }()

    func serviceScript(release: String, broken: String? = nil, crashOnce: String? = nil) -> String {
        """
        #!/bin/sh
        # Test fixture: what an FM service runs. Worker and schedule services write a heartbeat naming
        # the release this script belongs to and the config they read through frappe-bench.
        service=${1:-unknown}
        release=\(release)
        [ "$service" = "\(broken ?? "-")" ] && { echo "$service: crashing on start (fixture)" >&2; exit 1; }
        bench=/workspace/frappe-bench
        logs=/workspace/deployment-data/logs
        # (a container keeps its hostname, its ID, when its restart policy restarts it)
        if [ "$service" = "\(crashOnce ?? "-")" ] && [ ! -e "$logs/.fdtb-crashed-$(hostname)" ]; then
            mkdir -p "$logs" && : > "$logs/.fdtb-crashed-$(hostname)"
            echo "$service: crashing on its first start (fixture)" >&2
            exit 1
        fi
        while :; do
            queue=$(sed -n 's/.*"redis_queue" *: *"\\([^"]*\\)".*/\\1/p' "$bench/sites/common_site_config.json" 2>/dev/null | head -n 1)
            db=$(sed -n 's/.*"db_host" *: *"\\([^"]*\\)".*/\\1/p' "$bench/sites/\(site)/site_config.json" 2>/dev/null | head -n 1)
            mkdir -p "$logs"
            printf 'release=%s service=%s redis_queue=%s db_host=%s time=%s\\n' "$release" "$service" "$queue" "$db" "$(date +%s)" > "$logs/.hb-$service.tmp.log"
            mv "$logs/.hb-$service.tmp.log" "$logs/heartbeat-$service.log"
            sleep 1
        done

        """
    }

    // MARK: - File helpers

    func json(_ values: [String: String]) -> String {
        "{\n" + values.sorted { $0.key < $1.key }.map { "  \"\($0.key)\": \"\($0.value)\"" }.joined(separator: ",\n") + "\n}\n"
    }

    func mkdir(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        try write(path, Data(text.utf8), mode: mode)
    }

    func write(_ path: String, _ data: Data, mode: Int = 0o644) throws {
        try mkdir((path as NSString).deletingLastPathComponent)
        try data.write(to: URL(fileURLWithPath: path))
        if mode != 0o644 { try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path) }
    }

    func symlink(_ target: String, at path: String) throws {
        try mkdir((path as NSString).deletingLastPathComponent)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    func isSymlink(_ path: String) -> Bool {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil
    }
}

/// A fixture could not be written.
public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A small, fast, seedable generator, so fixtures are the same on every machine.
public struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
