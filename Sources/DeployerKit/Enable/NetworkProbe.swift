import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Questions about this host's network answered by the kernel, without sending a packet:
/// the source address toward a host (the routing table's choice), whether an address is local,
/// whether a TCP port is taken.
public enum NetworkProbe {
    public enum ProbeError: Error, Equatable, LocalizedError {
        case unresolvable(host: String, reason: String)
        case noRoute(host: String, reason: String)

        public var errorDescription: String? {
            switch self {
            case .unresolvable(let host, let reason):
                return "cannot resolve \(host) (\(reason)): give the worker's address with --server, or this server's with --advertise-address"
            case .noRoute(let host, let reason):
                return "this server has no route to \(host) (\(reason)): give the address the worker reaches this server at with --advertise-address"
            }
        }
    }

    /// The address this host would send from toward `host` (a UDP connect, which only consults
    /// the routing table).
    public static func sourceAddress(toward host: String) throws(ProbeError) -> String {
        let target = try resolve(host, numericOnly: false)
        let fd = socket(Int32(target.family), Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .noRoute(host: host, reason: errnoText()) }
        defer { close(fd) }
        var storage = target.storage
        let connected = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, target.length) }
        }
        guard connected == 0 else { throw .noRoute(host: host, reason: errnoText()) }
        var local = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0, let text = numericHost(local, length: length) else { throw .noRoute(host: host, reason: errnoText()) }
        return text
    }

    /// The first address `host` resolves to, as numeric text.
    public static func numericAddress(of host: String) throws(ProbeError) -> String {
        let resolved = try resolve(host, numericOnly: false)
        guard let text = numericHost(resolved.storage, length: resolved.length) else {
            throw .unresolvable(host: host, reason: "no numeric form")
        }
        return text
    }

    /// Whether `address` (numeric) belongs to this host, or is the wildcard address.
    public static func isLocal(_ address: String) -> Bool {
        bindResult(address, port: 0) == 0
    }

    /// Whether something holds TCP `port` on `address` (a listener on it or on the wildcard address).
    public static func isInUse(_ address: String, port: Int) -> Bool {
        bindResult(address, port: port) == EADDRINUSE
    }

    /// True for a numeric IPv4 or IPv6 address.
    public static func isNumericAddress(_ text: String) -> Bool {
        (try? resolve(text, numericOnly: true)) != nil
    }

    /// The wildcard addresses, which publish on every interface.
    public static func isWildcard(_ address: String) -> Bool { address == "0.0.0.0" || address == "::" }

    /// 0 when a TCP socket could bind there, otherwise the errno.
    private static func bindResult(_ address: String, port: Int) -> Int32 {
        guard let target = try? resolve(address, numericOnly: true, port: port) else { return EADDRNOTAVAIL }
        // Close-on-exec: a process started meanwhile (an ssh, an rsync) must not keep the port bound.
        let fd = socket(Int32(target.family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var yes: Int32 = 1
        // Connections in TIME_WAIT do not make a port "in use" for a new listener.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var storage = target.storage
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, target.length) }
        }
        return result == 0 ? 0 : errno
    }

    private struct Resolved {
        var family: Int32
        var storage: sockaddr_storage
        var length: socklen_t
    }

    private static func resolve(_ host: String, numericOnly: Bool, port: Int = 9) throws(ProbeError) -> Resolved {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = numericOnly ? AI_NUMERICHOST | AI_NUMERICSERV : AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw .unresolvable(host: host, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { buffer in
            buffer.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        return Resolved(family: first.pointee.ai_family, storage: storage, length: first.pointee.ai_addrlen)
    }

    private static func numericHost(_ storage: sockaddr_storage, length: socklen_t) -> String? {
        var storage = storage
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let status = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard status == 0 else { return nil }
        return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
