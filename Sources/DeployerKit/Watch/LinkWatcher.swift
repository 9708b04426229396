import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Wakes the watch as soon as an entry named `name` changes in `directory` (the `frappe-bench`
/// link being replaced or moved): inotify on a thread of its own. Where inotify is not available
/// (`start` returns nil) the watch polls the link instead.
public final class LinkWatcher: Sendable {
    private let descriptor: Int32
    private let events = Mutex(0)
    private let stopped = Mutex(false)

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Starts watching, or nil when inotify cannot watch `directory` (no kernel support, the
    /// watch limit reached, a file system without it).
    public static func start(directory: String, name: String) -> LinkWatcher? {
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { return nil }
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB)
        guard inotify_add_watch(descriptor, directory, mask) >= 0 else {
            close(descriptor)
            return nil
        }
        let watcher = LinkWatcher(descriptor: descriptor)
        let thread = Thread { watcher.read(name: name) }
        thread.name = "frappe-deployer inotify"
        thread.start()
        return watcher
    }

    /// How many events about the entry have arrived so far.
    public var count: Int { events.withLock { $0 } }

    /// Ends the thread (within half a second) and closes the descriptor.
    public func stop() {
        stopped.withLock { $0 = true }
    }

    private func read(name: String) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var wait = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while !stopped.withLock({ $0 }) {
            guard poll(&wait, 1, 500) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { continue }
            if Self.names(in: buffer, count: count).contains(name) { events.withLock { $0 += 1 } }
        }
        close(descriptor)
    }

    /// The entry names of the `inotify_event` records in `buffer` (wd, mask, cookie, len, name[len]).
    static func names(in buffer: [UInt8], count: Int) -> [String] {
        var names: [String] = []
        var offset = 0
        let header = MemoryLayout<inotify_event>.size
        while offset + header <= count {
            let length = buffer.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)) }
            let start = offset + header
            let bytes = buffer[start..<min(start + length, count)].prefix { $0 != 0 }
            names.append(String(decoding: bytes, as: UTF8.self))
            offset = start + length
        }
        return names
    }
}
