import DeployerKit
import DeployerTestSupport
import Foundation
import Synchronization
import Testing
import Yams

/// FM's site compose file as FM writes it (abridged): the shape enable must keep.
let fmSiteCompose = """
    services:
      frappe:
        image: ghcr.io/rtcamp/frappe-manager-frappe:v0.16.0
        environment:
          USERID: 1000
          SUPERVISOR_SERVICE_CONFIG_FILE_NAMES: "frappe.conf,socketio.conf"
        volumes:
          - ./workspace:/workspace:cached
        expose:
          - 80
        networks:
          site-network:
          global-backend-network:
      redis-queue:
        image: redis:6.2-alpine
        volumes:
          - redis-queue-data:/data
        networks:
          site-network:
        healthcheck:
          test: ["CMD", "redis-cli", "ping"]
          interval: 2s
    volumes:
      redis-queue-data:
    networks:
      site-network:
        name: a-test-network
      global-backend-network:
        external: true

    """

let fmServicesCompose = """
    services:
      global-db:
        image: mariadb:10.6
        restart: always
        environment:
          MYSQL_ROOT_PASSWORD_FILE: /run/secrets/db_root_password
        volumes:
          - fm-global-db-data:/var/lib/mysql
        networks:
          global-backend-network:
      global-nginx-proxy:
        image: jwilder/nginx-proxy
        ports:
          - "80:80"
          - "443:443"
    volumes:
      fm-global-db-data:
    networks:
      global-backend-network:
        name: fm-global-backend-network

    """

@Suite("Compose port syntax")
struct PortMappingTests {
    @Test("short syntax is read and written back the same", arguments: [
        "6379", "11000:6379", "10.0.0.5:11000:6379", "[fd00::5]:3306:3306", "8000-8010:80", "127.0.0.1::6379", "5000:5000/udp",
    ])
    func roundTrip(text: String) throws {
        let mapping = try #require(PortMapping.parse(text))
        #expect(mapping.description == text)
    }

    @Test("the parts are where compose puts them")
    func parts() throws {
        #expect(PortMapping.parse("10.0.0.5:11000:6379") == PortMapping(hostIP: "10.0.0.5", hostPorts: 11000...11000, containerPort: 6379))
        #expect(PortMapping.parse("[fd00::5]:3306:3306")?.hostIP == "fd00::5")
        #expect(PortMapping.parse("8000-8010:80")?.hostPorts == 8000...8010)
        #expect(PortMapping.parse("6379")?.hostPorts == nil)
        #expect(PortMapping.parse("${PORT}:80") == nil)
        #expect(PortMapping.parse("a:b:c:d") == nil)
    }

    @Test("a wildcard mapping covers every address; a specific one only its own")
    func covers() {
        let wildcard = PortMapping(hostIP: nil, hostPorts: 11000...11000, containerPort: 6379)
        let specific = PortMapping(hostIP: "10.0.0.5", hostPorts: 11000...11000, containerPort: 6379)
        #expect(wildcard.covers(address: "10.0.0.9", port: 11000))
        #expect(specific.covers(address: "10.0.0.5", port: 11000))
        #expect(!specific.covers(address: "10.0.0.9", port: 11000))
        #expect(!specific.covers(address: "10.0.0.5", port: 11001))
    }
}

@Suite("Editing compose files")
struct ComposeFileTests {
    /// The file as plain data, with the ports of `service` taken out.
    func settings(_ text: String, without service: String) throws -> NSDictionary {
        var tree = try #require(try Yams.load(yaml: text) as? [String: Any])
        var services = try #require(tree["services"] as? [String: Any])
        var definition = try #require(services[service] as? [String: Any])
        definition["ports"] = nil
        services[service] = definition
        tree["services"] = services
        return tree as NSDictionary
    }

    @Test("publishing a port keeps every other setting, and the key order")
    func keepsEverythingElse() throws {
        var file = try ComposeFile(path: "docker-compose.yml", text: fmSiteCompose)
        let mapping = PortMapping(hostIP: "10.0.0.5", hostPorts: 11000...11000, containerPort: 6379)
        #expect(try file.publish(mapping, on: "redis-queue"))
        let text = try file.text()
        #expect(try settings(text, without: "redis-queue") == settings(fmSiteCompose, without: "redis-queue"))
        #expect(try ComposeFile(path: "x", text: text).ports(of: "redis-queue") == [mapping])
        let keys = text.split(separator: "\n").filter { !$0.hasPrefix(" ") }
        #expect(keys == ["services:", "volumes:", "networks:"])
        #expect(text.contains("\"10.0.0.5:11000:6379\""))
        // compose itself reads it the same way (when the plugin is installed)
        #expect(text.range(of: "frappe:")!.lowerBound < text.range(of: "redis-queue:")!.lowerBound)
    }

    @Test("publishing what is already published changes nothing")
    func idempotent() throws {
        var file = try ComposeFile(path: "x", text: fmSiteCompose)
        let mapping = PortMapping(hostIP: "10.0.0.5", hostPorts: 11000...11000, containerPort: 6379)
        try file.publish(mapping, on: "redis-queue")
        var again = try ComposeFile(path: "x", text: try file.text())
        #expect(try !again.publish(mapping, on: "redis-queue"))
        #expect(try again.text() == (try file.text()))
    }

    @Test("a new port on the same address replaces the old entry; other addresses and ports stay")
    func replacesSameAddressOnly() throws {
        let text = """
            services:
              redis-queue:
                image: redis
                ports:
                  - "127.0.0.1:11000:6379"
                  - "10.0.0.5:11000:6379"
                  - target: 9121
                    published: 9121
                    host_ip: 127.0.0.1

            """
        var file = try ComposeFile(path: "x", text: text)
        try file.publish(PortMapping(hostIP: "10.0.0.5", hostPorts: 11002...11002, containerPort: 6379), on: "redis-queue")
        #expect(try file.ports(of: "redis-queue") == [
            PortMapping(hostIP: "127.0.0.1", hostPorts: 11000...11000, containerPort: 6379),
            PortMapping(hostIP: "127.0.0.1", hostPorts: 9121...9121, containerPort: 9121),
            PortMapping(hostIP: "10.0.0.5", hostPorts: 11002...11002, containerPort: 6379),
        ])
    }

    @Test("every published host port of a file is found, short and long syntax, ranges too")
    func publishedPorts() throws {
        let file = try ComposeFile(path: "x", text: fmServicesCompose + """
            x-other: 1

            """)
        #expect(try file.publishedHostPorts() == [80...80, 443...443])
        let ranged = try ComposeFile(path: "x", text: "services:\n  a:\n    ports: [\"8000-8010:80\", {target: 5, published: \"7000\"}]\n")
        #expect(try ranged.publishedHostPorts() == [8000...8010, 7000...7000])
    }

    @Test("files it cannot read are errors that name the file")
    func badFiles() throws {
        #expect(throws: ComposeFileError.self) { try ComposeFile(path: "x.yml", text: "services: [unclosed") }
        #expect(throws: ComposeFileError(path: "x.yml", problem: "is not a compose file (its top level is not a mapping)")) {
            try ComposeFile(path: "x.yml", text: "- a\n- b\n")
        }
        let variable = try ComposeFile(path: "x.yml", text: "services:\n  a:\n    ports: [\"${P}:80\"]\n")
        #expect(throws: ComposeFileError.self) { try variable.publishedHostPorts() }
    }
}

@Suite("Network probes")
struct NetworkProbeTests {
    @Test("a listening port is in use; once closed it is not")
    func inUse() throws {
        let port = (20000...20100).first { !NetworkProbe.isInUse("127.0.0.1", port: $0) }!
        var listener = TCPListener(port: port)
        #expect(listener != nil)
        #expect(NetworkProbe.isInUse("127.0.0.1", port: port))
        #expect(NetworkProbe.isInUse("0.0.0.0", port: port))
        listener = nil
        #expect(!NetworkProbe.isInUse("127.0.0.1", port: port))
    }

    @Test("local and foreign addresses, and the route's source address")
    func addresses() throws {
        #expect(NetworkProbe.isLocal("127.0.0.1"))
        #expect(NetworkProbe.isLocal("0.0.0.0"))
        #expect(!NetworkProbe.isLocal("192.0.2.77"))
        #expect(try NetworkProbe.sourceAddress(toward: "127.0.0.1") == "127.0.0.1")
        #expect(NetworkProbe.isNumericAddress("fd00::1") && NetworkProbe.isNumericAddress("10.1.2.3"))
        #expect(!NetworkProbe.isNumericAddress("worker.example"))
        #expect(try NetworkProbe.numericAddress(of: "localhost").hasSuffix("1"))
    }
}

@Suite("remote-worker enable against a temporary FM layout")
struct EnablerTests {
    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    var benches: String { directory.path + "/sites" }
    var services: String { directory.path + "/services" }

    init() throws {
        directory = try TemporaryDirectory()
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/sites", site: "a.test", release: "release_1",
                                              profile: FixtureProfile(files: 5, bytes: 1000), workerConfigs: false)
        try fmSiteCompose.write(toFile: fixture.siteDirectory + "/docker-compose.yml", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: services, withIntermediateDirectories: true)
        try fmServicesCompose.write(toFile: services + "/docker-compose.yml", atomically: true, encoding: .utf8)
        // Two other benches already publish their queues.
        for (bench, port) in [("b.test", "127.0.0.1:11000:6379"), ("c.test", "11001:6379")] {
            try FileManager.default.createDirectory(atPath: benches + "/" + bench, withIntermediateDirectories: true)
            try "services:\n  redis-queue:\n    image: redis\n    ports: [\"\(port)\"]\n"
                .write(toFile: benches + "/\(bench)/docker-compose.yml", atomically: true, encoding: .utf8)
        }
    }

    func settings(force: Bool = false, restart: Bool = true) -> EnableSettings {
        EnableSettings(siteName: "a.test", benchesPath: benches, servicesPath: services,
                       worker: WorkerSettings(server: "worker-alias", workspacePath: "/home/frappe/frappe/sites/a.test/workspace"),
                       advertiseAddress: "127.0.0.1", force: force, restart: restart)
    }

    /// Answers like ssh -G and a docker engine whose containers run and publish what `up` last gave them.
    final class Docker: Sendable {
        let published = Mutex<[String: String]>([:])
        let running: Bool
        init(running: Bool = true) { self.running = running }

        var runner: RecordingRunner {
            RecordingRunner { command in
                let args = command.arguments
                if command.executable == "ssh" { return .ok("user frappe\nhostname 127.0.0.1\nport 22\n") }
                guard let service = args.last else { return .failed(1) }
                switch args.dropLast().last {
                case "-q": return .ok(self.running ? "0123abcd\n" : "")
                case "--no-deps":
                    let file = args[args.firstIndex(of: "-f")! + 1]
                    let port = (try? ComposeFile.load(path: file).ports(of: service).first?.description) ?? nil
                    self.published.withLock { $0[service] = port.map { String($0.split(separator: ":").dropLast().joined(separator: ":")) } }
                    return .ok("")
                default:
                    let service = args[args.count - 2]
                    if let live = self.published.withLock({ $0[service] }) { return .ok(live + "\n") }
                    return .failed(1, "no port \(args.last!) for container \(service)")
                }
            }
        }
    }

    func run(_ enabler: Enabler, _ settings: EnableSettings) async throws -> [String] {
        let plan = try await enabler.plan(settings)
        let lines = Mutex<[String]>([])
        try await enabler.apply(plan, restart: settings.restart) { line in lines.withLock { $0.append(line) } }
        return lines.withLock { $0 }
    }

    @Test("first run: a port no bench uses and nothing listens on, both files, both services recreated")
    func firstRun() async throws {
        // 11002 is the first port no compose file names; something listens there.
        let busy = (11002...11100).first { !NetworkProbe.isInUse("127.0.0.1", port: $0) }!
        let listener = try #require(TCPListener(port: busy))
        let expected = (busy + 1...11200).first { !NetworkProbe.isInUse("127.0.0.1", port: $0) }!
        let site = fixture.deploymentData + "/sites/a.test/site_config.json"
        chmod(site, 0o600)

        let docker = Docker()
        let runner = docker.runner
        let lines = try await run(Enabler(runner: runner), settings())
        withExtendedLifetime(listener) {}

        let queue = try ComposeFile.load(path: fixture.siteDirectory + "/docker-compose.yml").ports(of: "redis-queue")
        #expect(queue == [PortMapping(hostIP: "127.0.0.1", hostPorts: expected...expected, containerPort: 6379)])
        let db = try ComposeFile.load(path: services + "/docker-compose.yml").ports(of: "global-db")
        #expect(db == [PortMapping(hostIP: "127.0.0.1", hostPorts: 3306...3306, containerPort: 3306)])

        let common = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture.deploymentData + "/sites/common_site_config.workers.json"))) as? [String: String]
        #expect(common == ["redis_queue": "redis://127.0.0.1:\(expected)", "redis_cache": "redis://redis-cache:6379", "socketio_port": "9000"])
        let siteWorkers = fixture.deploymentData + "/sites/a.test/site_config.workers.json"
        let siteConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: siteWorkers))) as? [String: String]
        #expect(siteConfig == ["db_host": "127.0.0.1", "db_name": "_site_db", "db_password": "fixture-secret"])
        #expect(AtomicFile.mode(of: siteWorkers) == 0o600, "the copy of a secret keeps its source's mode")
        #expect(!lines.joined().contains("fixture-secret"), "no secret in the report")

        let recreated = runner.commands.filter { $0.arguments.contains("up") }.map { $0.arguments.last! }
        #expect(recreated == ["redis-queue", "global-db"])
        #expect(lines.contains("redis-queue now publishes 127.0.0.1:\(expected):6379"))
        #expect(lines.contains { $0.contains("--ctorigdstport \(expected)") && $0.contains("! -s 127.0.0.1") })
        // Nothing left behind by the atomic writes.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.deploymentData + "/sites").filter { $0.contains("fd-tmp") }
        #expect(leftovers.isEmpty)
    }

    @Test("a second run changes nothing and says so")
    func idempotent() async throws {
        let docker = Docker()
        _ = try await run(Enabler(runner: docker.runner), settings())
        let files = [fixture.siteDirectory + "/docker-compose.yml", services + "/docker-compose.yml"] + [
            "common_site_config.workers.json", "a.test/site_config.workers.json"].map { fixture.deploymentData + "/sites/" + $0 }
        let before = files.map { FileManager.default.contents(atPath: $0) }
        let second = docker.runner
        let lines = try await run(Enabler(runner: second), settings())
        #expect(files.map { FileManager.default.contents(atPath: $0) } == before)
        #expect(lines.contains("nothing to change: this server is already enabled for remote workers"))
        #expect(!second.commands.contains { $0.arguments.contains("up") })
    }

    @Test("existing worker configs are kept (and the difference named) unless --force")
    func force() async throws {
        let target = fixture.deploymentData + "/sites/common_site_config.workers.json"
        try #"{"redis_queue": "redis://192.0.2.1:11000"}"#.write(toFile: target, atomically: true, encoding: .utf8)
        chmod(target, 0o640)
        let lines = try await run(Enabler(runner: Docker().runner), settings())
        #expect(try String(contentsOfFile: target, encoding: .utf8).contains("192.0.2.1"))
        #expect(lines.contains { $0.contains("kept, but it has redis_queue = redis://192.0.2.1:11000 (--force replaces it)") })

        // A queue URL with a password is named without it (issue 11.2).
        try #"{"redis_queue": "redis://:s3cr3t-pass@192.0.2.1:11000"}"#.write(toFile: target, atomically: true, encoding: .utf8)
        chmod(target, 0o640)
        let withPassword = try await run(Enabler(runner: Docker().runner), settings())
        #expect(withPassword.contains { $0.contains("kept, but it has redis_queue = redis://:***@192.0.2.1:11000 (--force replaces it)") },
                "\(withPassword)")
        #expect(!withPassword.joined().contains("s3cr3t-pass"))

        let forced = try await run(Enabler(runner: Docker().runner), settings(force: true))
        #expect(try String(contentsOfFile: target, encoding: .utf8).contains("redis://127.0.0.1:110"))
        #expect(forced.contains { $0.hasPrefix("replaced \(target)") })
        #expect(AtomicFile.mode(of: target) == 0o640, "a replaced file keeps its mode")
    }

    @Test("--no-restart edits files and prints the command; a stopped service is not started")
    func noRestart() async throws {
        let runner = Docker().runner
        let lines = try await run(Enabler(runner: runner), settings(restart: false))
        #expect(!runner.commands.contains { $0.arguments.contains("up") })
        #expect(lines.contains { $0.contains("to publish it run: docker compose --project-directory \(fixture.siteDirectory)") })

        let stopped = Docker(running: false).runner
        let again = try await run(Enabler(runner: stopped), settings())
        #expect(!stopped.commands.contains { $0.arguments.contains("up") })
        #expect(again.contains { $0.hasPrefix("global-db is not running") })
    }

    @Test("bad input stops before anything changes")
    func badInput() async throws {
        let compose = fixture.siteDirectory + "/docker-compose.yml"
        let before = FileManager.default.contents(atPath: compose)
        var foreign = settings()
        foreign.advertiseAddress = "192.0.2.77"
        await #expect(throws: EnableError.self) { try await Enabler(runner: Docker().runner).plan(foreign) }

        var noServices = settings()
        noServices.servicesPath = directory.path + "/nowhere"
        let error = await #expect(throws: EnableError.self) { try await Enabler(runner: Docker().runner).plan(noServices) }
        #expect(error?.message.contains("--services-path") == true)

        try "services:\n  a:\n    ports: [\"${P}:80\"]\n".write(toFile: benches + "/b.test/docker-compose.yml", atomically: true, encoding: .utf8)
        let unreadable = await #expect(throws: EnableError.self) { try await Enabler(runner: Docker().runner).plan(settings()) }
        #expect(unreadable?.message.contains("b.test/docker-compose.yml") == true)
        #expect(FileManager.default.contents(atPath: compose) == before)
        #expect(!FileManager.default.fileExists(atPath: fixture.deploymentData + "/sites/common_site_config.workers.json"))
    }

    @Test("a wildcard bind is allowed only when asked, with a warning")
    func wildcard() async throws {
        // global-db already publishes 3306 everywhere, so no probe of 0.0.0.0:3306 (which other
        // programs on this machine may hold) decides this test.
        let compose = services + "/docker-compose.yml"
        try fmServicesCompose.replacingOccurrences(of: "    restart: always\n", with: "    restart: always\n    ports: [\"3306:3306\"]\n")
            .write(toFile: compose, atomically: true, encoding: .utf8)
        var wide = settings()
        wide.bindAddress = "0.0.0.0"
        let plan = try await Enabler(runner: Docker().runner).plan(wide)
        #expect(plan.queue.mapping.hostIP == nil)
        #expect(plan.database.newText == nil, "already published on every address")
        #expect(plan.warnings.contains { $0.contains("every address") })
    }
}
