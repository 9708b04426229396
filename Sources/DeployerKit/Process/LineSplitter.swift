/// Splits a command's output, arriving in chunks of any size, into lines: at LF, CR, or CRLF (one
/// break, even when the CR ends one chunk and the LF starts the next), the breaks left out; a last
/// line without a break comes with `finish`. CR counts because rsync's `--info=progress2` rewrites
/// its line with it.
///
/// swift-subprocess's `strings()` does the same with one generic `await` per byte, which cost a
/// no-change sync about 1.4 CPU-seconds for the 28,000 lines of a release's listing (the main
/// server's digest); this works on whole chunks.
public struct LineSplitter: Sendable {
    /// A line longer than this is handed on in pieces of this size: a child that writes without
    /// breaks cannot grow the tool's memory.
    public static let maxLineLength = 128 * 1024
    private var pending: [UInt8] = []
    private var afterCarriageReturn = false

    public init() {}

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ line: (String) -> Void) {
        var start = 0
        for index in 0..<bytes.count {
            let byte = bytes[index]
            guard byte == 0x0A || byte == 0x0D else { continue }
            if byte == 0x0A, afterCarriageReturn, index == start, pending.isEmpty {
                // The LF of a CRLF whose CR was the last byte before it: no second line.
                afterCarriageReturn = false
                start = index + 1
                continue
            }
            emit(UnsafeRawBufferPointer(rebasing: bytes[start..<index]), line)
            afterCarriageReturn = byte == 0x0D
            start = index + 1
        }
        if start < bytes.count {
            afterCarriageReturn = false
            pending.append(contentsOf: bytes[start...])
            while pending.count >= Self.maxLineLength {
                line(String(decoding: pending.prefix(Self.maxLineLength), as: UTF8.self))
                pending.removeFirst(Self.maxLineLength)
            }
        }
    }

    /// The last line, when the output did not end with a break.
    public mutating func finish(_ line: (String) -> Void) {
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
        pending = []
        afterCarriageReturn = false
    }

    private mutating func emit(_ tail: UnsafeRawBufferPointer, _ line: (String) -> Void) {
        if pending.isEmpty {
            line(String(decoding: tail, as: UTF8.self))
        } else {
            pending.append(contentsOf: tail)
            line(String(decoding: pending, as: UTF8.self))
            pending.removeAll(keepingCapacity: true)
        }
    }
}
