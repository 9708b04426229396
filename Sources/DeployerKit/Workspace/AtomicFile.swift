import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Replaces a file all at once: the new content goes to a temporary file beside it (created with
/// the final mode, so a secret is never readable by others for a moment), is flushed to disk, and
/// is renamed over the target. A reader sees the old file or the new one, never a part.
public enum AtomicFile {
    public struct WriteError: Error, Equatable, LocalizedError {
        public var path: String
        public var reason: String
        public var errorDescription: String? { "cannot write \(path): \(reason)" }
    }

    /// The permission bits of `path`, or nil when it does not exist.
    public static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    public static func write(_ data: Data, to path: String, mode: mode_t) throws(WriteError) {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/.\(url.lastPathComponent).fd-tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            // A temporary left by a killed run of this same pid is stale: remove it once and retry.
            if errno == EEXIST, unlink(temporary) == 0 { return try write(data, to: path, mode: mode) }
            throw WriteError(path: path, reason: String(cString: strerror(errno)))
        }
        var failure: String?
        // The umask may have narrowed the mode given to open.
        if fchmod(fd, mode) != 0 { failure = String(cString: strerror(errno)) }
        if failure == nil {
            do {
                try FileHandle(fileDescriptor: fd, closeOnDealloc: false).write(contentsOf: data)
            } catch {
                failure = error.localizedDescription
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw WriteError(path: path, reason: failure)
        }
        // The rename itself is durable once the directory is flushed.
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
    }
}
