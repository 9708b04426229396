import DeployerKit
import Foundation
import Testing

@Suite("Output split into lines, in chunks of any size")
struct LineSplitterTests {
    /// The lines of `text` fed in chunks of `size` bytes.
    static func lines(_ text: String, chunk size: Int) -> [String] {
        let bytes = Array(text.utf8)
        var splitter = LineSplitter()
        var lines: [String] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + size, bytes.count)
            bytes[start..<end].withUnsafeBytes { splitter.feed($0) { lines.append($0) } }
            start = end
        }
        splitter.finish { lines.append($0) }
        return lines
    }

    @Test("LF, CR and CRLF each end one line; empty lines stay; the last line needs no break; any chunking gives the same")
    func breaks() {
        let text = "a=1\nb\r\nc\rd\n\ne é\r\r\nlast"
        for size in 1...text.utf8.count {
            #expect(Self.lines(text, chunk: size) == ["a=1", "b", "c", "d", "", "e é", "", "last"], "chunk \(size)")
        }
        #expect(Self.lines("", chunk: 4).isEmpty)
        #expect(Self.lines("x\n", chunk: 4) == ["x"])
        #expect(Self.lines("\n", chunk: 4) == [""])
    }

    @Test("a line without breaks is handed on in pieces, never held whole")
    func longLine() {
        let long = String(repeating: "x", count: LineSplitter.maxLineLength * 2 + 5)
        let lines = Self.lines(long + "\ny", chunk: 4096)
        #expect(lines.map(\.count) == [LineSplitter.maxLineLength, LineSplitter.maxLineLength, 5, 1])
    }

    @Test("a real command's output: every line of a long listing, in order, through SubprocessRunner")
    func throughTheRunner() async throws {
        let output = try await SubprocessRunner().run(Command("/bin/sh", ["-c", "seq 1 30000; printf 'tail'; printf 'err\\r\\n' >&2"]), onLine: nil)
        let lines = output.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(lines.count == 30001 && lines.first == "1" && lines[29999] == "30000" && lines.last == "tail")
        #expect(output.standardErrorTail == ["err"])
    }
}
