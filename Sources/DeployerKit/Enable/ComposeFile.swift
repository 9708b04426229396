import Foundation
import Yams

/// One published port of a compose service, in either of compose's spellings
/// (`"[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]"` or the long form with `target`/`published`).
public struct PortMapping: Sendable, Equatable, CustomStringConvertible {
    /// The address the port is published on; nil means every address (compose's default).
    public var hostIP: String?
    /// The first and last host port (equal unless a range); nil when docker picks one.
    public var hostPorts: ClosedRange<Int>?
    public var containerPort: Int
    public var proto: String

    public init(hostIP: String?, hostPorts: ClosedRange<Int>?, containerPort: Int, proto: String = "tcp") {
        self.hostIP = hostIP
        self.hostPorts = hostPorts
        self.containerPort = containerPort
        self.proto = proto
    }

    /// A mapping published on every address (no host address, or 0.0.0.0 / ::).
    public var isWildcard: Bool { hostIP == nil || hostIP == "0.0.0.0" || hostIP == "::" }

    /// True when this mapping publishes `port` on `address` (a wildcard mapping covers every address).
    public func covers(address: String, port: Int) -> Bool {
        guard let hostPorts, hostPorts.contains(port), proto == "tcp" else { return false }
        return isWildcard || hostIP == address
    }

    /// The short syntax compose reads, e.g. `10.0.0.5:11000:6379` or `[fd00::5]:3306:3306`.
    public var description: String {
        var text = ""
        if let hostIP { text += hostIP.contains(":") ? "[\(hostIP)]:" : "\(hostIP):" }
        if let hostPorts {
            text += hostPorts.count == 1 ? "\(hostPorts.lowerBound):" : "\(hostPorts.lowerBound)-\(hostPorts.upperBound):"
        } else if hostIP != nil {
            text += ":"    // an address with a port docker picks: IP::CONTAINER
        }
        text += String(containerPort)
        if proto != "tcp" { text += "/\(proto)" }
        return text
    }

    /// Reads the short syntax; nil when it is not one (an environment variable, a container range).
    public static func parse(_ text: String) -> PortMapping? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var proto = "tcp"
        if let slash = rest.lastIndex(of: "/") {
            proto = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
        }
        var hostIP: String?
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            hostIP = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            rest = rest.dropFirst()
        }
        var parts = rest.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if hostIP == nil, parts.count == 3 {
            hostIP = parts.removeFirst()
        }
        guard (1...2).contains(parts.count), let container = Int(parts[parts.count - 1]) else { return nil }
        var hostPorts: ClosedRange<Int>?
        if parts.count == 2, !parts[0].isEmpty {
            guard let range = portRange(parts[0]) else { return nil }
            hostPorts = range
        }
        if hostIP == "" { hostIP = nil }
        return PortMapping(hostIP: hostIP, hostPorts: hostPorts, containerPort: container, proto: proto)
    }

    static func portRange(_ text: String) -> ClosedRange<Int>? {
        let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]),
              low >= 0, low <= high, high <= 65535 else { return nil }
        return low...high
    }
}

/// Why a compose file cannot be read or changed.
public struct ComposeFileError: Error, Equatable, LocalizedError {
    public var path: String
    public var problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var errorDescription: String? { "\(path): \(problem)" }
}

/// A docker compose file held as a YAML node tree, so one service's `ports` can change while every
/// other setting, its order and its quoting stay as they were.
public struct ComposeFile {
    public let path: String
    /// The text as read, to tell whether a change changed anything.
    public let originalText: String
    private var root: Node

    public init(path: String, text: String) throws(ComposeFileError) {
        self.path = path
        self.originalText = text
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ComposeFileError(path: path, problem: "is not valid YAML (\(String(describing: error).split(separator: "\n").first ?? ""))")
        }
        guard let node, node.mapping != nil else {
            throw ComposeFileError(path: path, problem: "is not a compose file (its top level is not a mapping)")
        }
        self.root = node
    }

    public static func load(path: String) throws(ComposeFileError) -> ComposeFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ComposeFileError(path: path, problem: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ComposeFileError(path: path, problem: "is not UTF-8 text")
        }
        return try ComposeFile(path: path, text: text)
    }

    public var serviceNames: [String] {
        root["services"]?.mapping?.keys.compactMap(\.string) ?? []
    }

    public func hasService(_ name: String) -> Bool { root["services"]?[name]?.mapping != nil }

    /// The service's published ports; entries compose would read but this cannot (variables) are
    /// reported, so a port choice never overlooks one silently.
    public func ports(of service: String) throws(ComposeFileError) -> [PortMapping] {
        guard let list = root["services"]?[service]?["ports"] else { return [] }
        guard let sequence = list.sequence else {
            throw ComposeFileError(path: path, problem: "services.\(service).ports is not a list")
        }
        var mappings: [PortMapping] = []
        for entry in sequence {
            if let text = entry.string ?? entry.int.map(String.init), let mapping = PortMapping.parse(text) {
                mappings.append(mapping)
            } else if let long = entry.mapping, let target = long["target"]?.int {
                var hostPorts: ClosedRange<Int>?
                if let published = long["published"] {
                    guard let range = (published.string ?? published.int.map(String.init)).flatMap(PortMapping.portRange) else {
                        throw ComposeFileError(path: path, problem: "services.\(service).ports has a published port this tool cannot read")
                    }
                    hostPorts = range
                }
                let ip = long["host_ip"]?.string
                mappings.append(PortMapping(hostIP: ip?.isEmpty == true ? nil : ip, hostPorts: hostPorts,
                                            containerPort: target, proto: long["protocol"]?.string ?? "tcp"))
            } else {
                throw ComposeFileError(path: path, problem: "services.\(service).ports has an entry this tool cannot read: \(entry.string ?? "a mapping without target")")
            }
        }
        return mappings
    }

    /// Every host port any service of this file publishes.
    public func publishedHostPorts() throws(ComposeFileError) -> [ClosedRange<Int>] {
        var ports: [ClosedRange<Int>] = []
        for service in serviceNames {
            ports += try self.ports(of: service).compactMap(\.hostPorts)
        }
        return ports
    }

    /// Makes `service` publish `mapping`: entries that publish the same container port on the same
    /// host address (or on every address) are replaced; others stay. Returns whether anything changed.
    @discardableResult
    public mutating func publish(_ mapping: PortMapping, on service: String) throws(ComposeFileError) -> Bool {
        guard var services = root["services"]?.mapping, var definition = services[service]?.mapping else {
            throw ComposeFileError(path: path, problem: "has no service \(service)")
        }
        let existing = try ports(of: service)
        if existing.contains(mapping) { return false }
        var entries = definition["ports"]?.sequence.map(Array.init) ?? []
        let style = definition["ports"]?.sequence?.style ?? .block
        // Same container port on the same address, or a wildcard either way: the old entry goes.
        let replaced = existing.indices.filter { index in
            let old = existing[index]
            return old.containerPort == mapping.containerPort && old.proto == mapping.proto
                && (old.hostIP == mapping.hostIP || old.isWildcard || mapping.isWildcard)
        }
        for index in replaced.reversed() { entries.remove(at: index) }
        entries.append(Node(mapping.description, .implicit, .doubleQuoted))
        definition["ports"] = Node(entries, .implicit, style)
        services[service] = .mapping(definition)
        root["services"] = .mapping(services)
        return true
    }

    /// The file's text after any changes.
    public func text() throws(ComposeFileError) -> String {
        do {
            return try Yams.serialize(node: root, indent: 2, width: -1, allowUnicode: true, sortKeys: false)
        } catch {
            throw ComposeFileError(path: path, problem: "cannot be written back as YAML (\(error))")
        }
    }
}
