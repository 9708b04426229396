import Foundation

/// What `remote-worker enable` needs, after layering and validation.
public struct EnableSettings: Sendable {
    public var siteName: String
    /// The FM benches root (`~/frappe/sites`).
    public var benchesPath: String
    /// FM's global services directory (`~/frappe/services`), whose compose file runs `global-db`.
    public var servicesPath: String
    /// The worker: its address decides which of this server's addresses it reaches.
    public var worker: WorkerSettings
    /// The address workers use to reach this server; nil takes the source address toward the worker.
    public var advertiseAddress: String?
    /// The local address the ports are published on; nil publishes on the advertised address.
    public var bindAddress: String?
    /// Replace existing `.workers.json` files.
    public var force: Bool
    /// Recreate services whose publishing changed (false: only print the commands).
    public var restart: Bool

    public init(siteName: String, benchesPath: String, servicesPath: String, worker: WorkerSettings,
                advertiseAddress: String? = nil, bindAddress: String? = nil, force: Bool = false, restart: Bool = true) {
        self.siteName = siteName
        self.benchesPath = benchesPath
        self.servicesPath = servicesPath
        self.worker = worker
        self.advertiseAddress = advertiseAddress
        self.bindAddress = bindAddress
        self.force = force
        self.restart = restart
    }
}

/// Why enable cannot go ahead; raised before anything is changed.
public struct EnableError: Error, Equatable, LocalizedError {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var errorDescription: String? { message }
}

/// One service that must publish one port.
public struct Publication: Sendable, Equatable {
    public var service: String
    public var project: ComposeProject
    public var mapping: PortMapping
    /// The compose file's new text, or nil when it already publishes the port.
    public var newText: String?
    /// Said to the operator before the service is recreated (e.g. what depends on it).
    public var impact: String
}

/// One `.workers.json` file and what enable does with it.
public struct WorkerConfigChange: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case create, replace
        /// Already holds what enable would write.
        case unchanged
        /// Exists and differs; kept because --force was not given. The text says how it differs.
        case keep(String)
    }

    public var path: String
    public var action: Action
    public var data: Data
    public var mode: mode_t
    /// The keys enable sets, as `key = value`, for the report (never the whole file: it holds secrets).
    public var summary: String
}

/// Everything enable will do, decided before anything changes.
public struct EnablePlan: Sendable, Equatable {
    public var workerAddress: String
    public var advertiseAddress: String
    public var bindAddress: String
    /// How the advertised address was chosen, for the report.
    public var addressOrigin: String
    public var queue: Publication
    public var database: Publication
    public var configs: [WorkerConfigChange]
    public var warnings: [String]

    public var publications: [Publication] { [queue, database] }
}

/// `remote-worker enable`: publish the site's redis-queue and FM's global-db on an address the
/// worker can reach, and write the worker configs that point at them.
public struct Enabler: Sendable {
    public static let firstQueuePort = 11000
    public static let lastQueuePort = 11999
    public static let redisPort = 6379
    public static let databasePort = 3306

    let runner: any CommandRunning

    public init(runner: any CommandRunning) {
        self.runner = runner
    }

    // MARK: Plan

    /// Reads the layout and decides every change; writes nothing.
    public func plan(_ settings: EnableSettings) async throws -> EnablePlan {
        let workspace = try LocalWorkspace.locate(benchesPath: settings.benchesPath, siteName: settings.siteName)
        var warnings: [String] = []

        let workerHost = await sshHostName(settings.worker)
        let workerAddress = try NetworkProbe.numericAddress(of: workerHost)
        let advertise: String
        let origin: String
        if let given = settings.advertiseAddress {
            advertise = given
            origin = "--advertise-address"
        } else {
            advertise = try NetworkProbe.sourceAddress(toward: workerAddress)
            origin = "this server's source address toward \(workerAddress)"
            if advertise.hasPrefix("127.") || advertise == "::1" {
                throw EnableError("the worker \(workerAddress) is this host itself (loopback): give --advertise-address with an address a worker server reaches")
            }
        }
        let bind = settings.bindAddress ?? advertise
        guard NetworkProbe.isNumericAddress(bind) else {
            throw EnableError("\(bind) is not an IP address: ports are published on a local IP address; give --bind-address")
        }
        guard NetworkProbe.isLocal(bind) else {
            throw EnableError("\(bind) is not an address of this server (a NAT or public address?): give --bind-address with the local address that traffic to \(advertise) arrives at")
        }
        if NetworkProbe.isWildcard(bind) {
            warnings.append("publishing redis-queue and global-db on every address of this server (\(bind)), as --bind-address asks: anyone who reaches this server can try them; firewall them")
        }

        // The site's redis-queue.
        let siteCompose = workspace.siteDirectory + "/docker-compose.yml"
        var queueFile = try ComposeFile.load(path: siteCompose)
        guard queueFile.hasService("redis-queue") else {
            throw EnableError("\(siteCompose) has no redis-queue service: is this an FM bench?")
        }
        let queuePort = try chooseQueuePort(file: queueFile, bind: bind, benchesPath: settings.benchesPath,
                                            servicesCompose: settings.servicesPath + "/docker-compose.yml")
        let queue = try publication(file: &queueFile, service: "redis-queue", bind: bind, hostPort: queuePort,
                                    containerPort: Self.redisPort, directory: workspace.siteDirectory,
                                    impact: "the queue of \(settings.siteName) only; jobs wait in Redis while it restarts",
                                    warnings: &warnings)

        // FM's global database.
        let servicesCompose = settings.servicesPath + "/docker-compose.yml"
        guard FileManager.default.fileExists(atPath: servicesCompose) else {
            throw EnableError("FM's global services file \(servicesCompose) does not exist: give --services-path (the directory holding the global-db compose file)")
        }
        var databaseFile = try ComposeFile.load(path: servicesCompose)
        guard databaseFile.hasService("global-db") else {
            throw EnableError("\(servicesCompose) has no global-db service: give --services-path of FM's global services")
        }
        let databaseCovered = try databaseFile.ports(of: "global-db").contains { $0.containerPort == Self.databasePort && $0.covers(address: bind, port: Self.databasePort) }
        if !databaseCovered, NetworkProbe.isInUse(bind, port: Self.databasePort) {
            throw EnableError("port \(Self.databasePort) on \(bind) is already taken by another program (a MariaDB on the host?): stop it, or publish on another address with --bind-address")
        }
        let database = try publication(file: &databaseFile, service: "global-db", bind: bind, hostPort: Self.databasePort,
                                       containerPort: Self.databasePort, directory: settings.servicesPath,
                                       impact: "the database of every bench on this server: a few seconds without it",
                                       warnings: &warnings)

        let host = advertise.contains(":") ? "[\(advertise)]" : advertise
        let configs = try [
            workerConfig(source: workspace.deploymentDataPath + "/sites/common_site_config.json",
                         target: workspace.workerConfigFiles[0],
                         values: ["redis_queue": "redis://\(host):\(queue.mapping.hostPorts!.lowerBound)"], force: settings.force),
            workerConfig(source: workspace.deploymentDataPath + "/sites/\(settings.siteName)/site_config.json",
                         target: workspace.workerConfigFiles[1],
                         values: ["db_host": advertise], setIfPresent: ["db_port": Self.databasePort], force: settings.force),
        ]
        return EnablePlan(workerAddress: workerAddress, advertiseAddress: advertise, bindAddress: bind, addressOrigin: origin,
                          queue: queue, database: database, configs: configs, warnings: warnings)
    }

    /// The host name ssh would connect to (ssh_config aliases and HostName resolved by `ssh -G`).
    func sshHostName(_ worker: WorkerSettings) async -> String {
        var arguments: [String] = []
        if let config = worker.sshConfig { arguments += ["-F", config] }
        arguments += worker.sshOptions.flatMap { ["-o", $0] }
        arguments += ["-G", "-p", String(worker.sshPort), "--", worker.destination]
        guard let output = try? await runner.run(Command("ssh", arguments)), output.succeeded else { return worker.server }
        let line = output.standardOutput.split(separator: "\n").first { $0.hasPrefix("hostname ") }
        return line.map { String($0.dropFirst("hostname ".count)) } ?? worker.server
    }

    /// The queue's host port: the one it already publishes on `bind`, or the first port from 11000
    /// that no compose file under the benches root (nor FM's services) publishes and nothing listens on.
    func chooseQueuePort(file: ComposeFile, bind: String, benchesPath: String, servicesCompose: String) throws -> Int {
        // Already published on this address (or on every address): keep that port.
        let current = try file.ports(of: "redis-queue").first {
            $0.containerPort == Self.redisPort && $0.proto == "tcp" && $0.hostPorts?.count == 1 && ($0.isWildcard || $0.hostIP == bind)
        }
        if let port = current?.hostPorts?.lowerBound { return port }

        var taken: [ClosedRange<Int>] = []
        for path in Self.composeFiles(benchesPath: benchesPath) + [servicesCompose] where FileManager.default.fileExists(atPath: path) {
            do {
                taken += try ComposeFile.load(path: path).publishedHostPorts()
            } catch {
                throw EnableError("cannot tell which ports \(error.localizedDescription); fix that file so a free port can be chosen")
            }
        }
        for port in Self.firstQueuePort...Self.lastQueuePort
        where !taken.contains(where: { $0.contains(port) }) && !NetworkProbe.isInUse(bind, port: port) {
            return port
        }
        throw EnableError("no free port for redis-queue between \(Self.firstQueuePort) and \(Self.lastQueuePort) on \(bind)")
    }

    /// Every bench's compose files under the benches root (docker-compose*.yml / .yaml).
    static func composeFiles(benchesPath: String) -> [String] {
        let fm = FileManager.default
        let benches = (try? fm.contentsOfDirectory(atPath: benchesPath))?.sorted() ?? []
        return benches.flatMap { bench -> [String] in
            let dir = benchesPath + "/" + bench
            let names = (try? fm.contentsOfDirectory(atPath: dir))?.sorted() ?? []
            return names.filter { $0.hasPrefix("docker-compose") && ($0.hasSuffix(".yml") || $0.hasSuffix(".yaml")) }
                .map { dir + "/" + $0 }
        }
    }

    func publication(file: inout ComposeFile, service: String, bind: String, hostPort: Int, containerPort: Int,
                     directory: String, impact: String, warnings: inout [String]) throws -> Publication {
        let wanted = PortMapping(hostIP: NetworkProbe.isWildcard(bind) ? nil : bind, hostPorts: hostPort...hostPort, containerPort: containerPort)
        let existing = try file.ports(of: service)
        var newText: String?
        if let wide = existing.first(where: { $0.isWildcard && $0.containerPort == containerPort && $0.covers(address: bind, port: hostPort) }),
           !NetworkProbe.isWildcard(bind) {
            // Someone published it on every address already; narrowing it could cut off what uses it.
            warnings.append("\(service) already publishes \(wide) on every address of this server (\(file.path)); left as it is: firewall it, or narrow it to \(bind) yourself")
        } else if try file.publish(wanted, on: service) {
            newText = try file.text()
        }
        return Publication(service: service, project: ComposeProject(directory: directory, file: file.path),
                           mapping: newText == nil ? (existing.first { $0.containerPort == containerPort && $0.covers(address: bind, port: hostPort) } ?? wanted) : wanted,
                           newText: newText, impact: impact)
    }

    /// The worker copy of one config: the main server's file with `values` set (and `setIfPresent`
    /// set only where the key exists).
    func workerConfig(source: String, target: String, values: [String: Any], setIfPresent: [String: Any] = [:],
                      force: Bool) throws -> WorkerConfigChange {
        func object(at path: String) throws -> [String: Any] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw EnableError("\(path) cannot be read: enable copies it into the worker config")
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw EnableError("\(path) is not a JSON object: fix it before enabling workers")
            }
            return object
        }
        var config = try object(at: source)
        for (key, value) in values { config[key] = value }
        for (key, value) in setIfPresent where config[key] != nil { config[key] = value }
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8)
        let summary = values.keys.sorted().map { "\($0) = \(Redaction.display(key: $0, value: values[$0]!))" }.joined(separator: ", ")

        guard FileManager.default.fileExists(atPath: target) else {
            // The copy holds the same secrets as its source: it gets the source's mode.
            return WorkerConfigChange(path: target, action: .create, data: data, mode: AtomicFile.mode(of: source) ?? 0o600, summary: summary)
        }
        let mode = AtomicFile.mode(of: target) ?? 0o600
        if FileManager.default.contents(atPath: target) == data {
            return WorkerConfigChange(path: target, action: .unchanged, data: data, mode: mode, summary: summary)
        }
        if force {
            return WorkerConfigChange(path: target, action: .replace, data: data, mode: mode, summary: summary)
        }
        let existing = try object(at: target)
        let differing = values.keys.sorted().filter { "\(existing[$0] ?? "nothing")" != "\(values[$0]!)" }
        let why = differing.isEmpty
            ? "kept; other keys differ from the current \(URL(fileURLWithPath: source).lastPathComponent) (--force refreshes it)"
            : "kept, but it has " + differing.map { key in "\(key) = \(existing[key].map { Redaction.display(key: key, value: $0) } ?? "nothing")" }.joined(separator: ", ") + " (--force replaces it)"
        return WorkerConfigChange(path: target, action: .keep(why), data: data, mode: mode, summary: summary)
    }

    // MARK: Apply

    /// Writes the planned files, then recreates the services whose publishing is not yet live.
    /// Returns the report's lines; throws when a service could not be brought to its new ports
    /// (the files stay written, and running enable again retries).
    public func apply(_ plan: EnablePlan, restart: Bool, onLine: (String) -> Void) async throws {
        onLine("worker \(plan.workerAddress) will reach this server at \(plan.advertiseAddress) (\(plan.addressOrigin))")
        for warning in plan.warnings { onLine("warning: \(warning)") }
        var changed = false
        for publication in plan.publications {
            let what = "\(publication.service) publishes \(publication.mapping)"
            if let text = publication.newText {
                let mode = AtomicFile.mode(of: publication.project.file) ?? 0o644
                try AtomicFile.write(Data(text.utf8), to: publication.project.file, mode: mode)
                onLine("\(what): changed \(publication.project.file)")
                changed = true
            } else {
                onLine("\(what): already in \(publication.project.file)")
            }
        }
        for config in plan.configs {
            switch config.action {
            case .create, .replace:
                try AtomicFile.write(config.data, to: config.path, mode: config.mode)
                onLine("\(config.action == .create ? "wrote" : "replaced") \(config.path) (\(config.summary))")
                changed = true
            case .unchanged:
                onLine("\(config.path): up to date (\(config.summary))")
            case .keep(let why):
                onLine("\(config.path): \(why)")
            }
        }
        var failures: [String] = []
        for publication in plan.publications {
            do {
                if try await bringLive(publication, restart: restart, onLine: onLine) { changed = true }
            } catch {
                failures.append("\(publication.service): \(error.localizedDescription)")
            }
        }
        if !changed && failures.isEmpty { onLine("nothing to change: this server is already enabled for remote workers") }
        for line in firewallAdvice(plan) { onLine(line) }
        if !failures.isEmpty {
            throw EnableError("files are written, but " + failures.joined(separator: "; ") + " (run enable again to retry)")
        }
    }

    /// Makes the running container publish what the file says; true when it recreated it.
    func bringLive(_ publication: Publication, restart: Bool, onLine: (String) -> Void) async throws -> Bool {
        let project = publication.project
        let running = try await runner.run(project.runningContainer(publication.service))
        guard running.succeeded else {
            throw EnableError("docker compose could not list it: \(running.standardErrorTail.last ?? "exit \(running.exitCode)")")
        }
        if running.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            onLine("\(publication.service) is not running: it publishes \(publication.mapping) when FM starts it")
            return false
        }
        if try await isLive(publication) { return false }
        let command = project.recreate(publication.service)
        guard restart else {
            onLine("\(publication.service) still runs without \(publication.mapping); to publish it run: \(command)")
            return false
        }
        onLine("recreating \(publication.service) (\(publication.impact))")
        let output = try await runner.run(command)
        guard output.succeeded else {
            throw EnableError("`\(command)` failed: \(output.standardErrorTail.last ?? "exit \(output.exitCode)")")
        }
        guard try await isLive(publication) else {
            throw EnableError("recreated, but docker does not show \(publication.mapping) published")
        }
        onLine("\(publication.service) now publishes \(publication.mapping)")
        return true
    }

    func isLive(_ publication: Publication) async throws -> Bool {
        let output = try await runner.run(publication.project.publishedPort(publication.service, containerPort: publication.mapping.containerPort))
        guard output.succeeded, let port = publication.mapping.hostPorts?.lowerBound else { return false }
        let expected = publication.mapping.hostIP ?? "0.0.0.0"
        return output.standardOutput.split(whereSeparator: \.isNewline).contains { line in
            let text = line.trimmingCharacters(in: .whitespaces)
            return text == "\(expected):\(port)" || text == "[\(expected)]:\(port)"
        }
    }

    /// What the operator must allow on this server's firewall. Docker's published ports are
    /// filtered in the DOCKER-USER chain, before ufw's or INPUT's rules see them.
    public func firewallAdvice(_ plan: EnablePlan) -> [String] {
        let ports = plan.publications.compactMap { $0.mapping.hostPorts?.lowerBound }
        var lines = ["firewall: allow TCP from the worker \(plan.workerAddress) to \(plan.bindAddress) ports "
            + ports.map(String.init).joined(separator: " and ") + " (redis-queue, global-db), and from nowhere else."]
        lines.append("  Docker-published ports bypass ufw and INPUT rules; filter them in DOCKER-USER, e.g.:")
        let iptables = plan.workerAddress.contains(":") ? "ip6tables" : "iptables"
        for port in ports {
            // DOCKER-USER sees packets after Docker's DNAT: match the port the worker connected to.
            lines.append("  \(iptables) -I DOCKER-USER -p tcp -m conntrack --ctorigdstport \(port) --ctdir ORIGINAL ! -s \(plan.workerAddress) -j DROP")
        }
        return lines
    }
}
