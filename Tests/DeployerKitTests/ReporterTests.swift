import DeployerKit
import Foundation
import Synchronization
import Testing

@Suite("Progress output")
struct ReporterTests {
    final class Screen: Sendable {
        let text = Mutex("")
        var write: @Sendable (String) -> Void { { chunk in self.text.withLock { $0 += chunk } } }
    }

    @Test("the live display keeps one line per worker, redrawn in place, with files, bytes and rate while transferring")
    func live() throws {
        let screen = Screen()
        let reporter = LiveReporter(hosts: ["w1", "w2"], write: screen.write)
        #expect(reporter.wantsProgress)
        reporter.report(.stepStarted(.stage, host: "w1", detail: "release_2 beside the running release"))
        reporter.report(.progress(host: "w1", tree: "release", progress: RsyncProgress(bytes: 3 * 1024 * 1024, percent: 40, rate: "12.5MB/s", files: 120)))
        reporter.finish()
        reporter.report(.stepFailed(.connect, host: "w2", seconds: 5))
        let text = screen.text.withLock { $0 }
        #expect(text.contains("[w1] stage... release_2 beside the running release"))
        #expect(text.contains("[w1] stage... 120 files, 3.0 MiB (40% of release), 12.5MB/s"))
        #expect(text.contains("[w2] connect FAILED after 5.0 s"))
        // Redrawn in place: after the first frame, each frame moves up over the two lines.
        #expect(text.contains("\u{1B}[2A"))
        #expect(text.components(separatedBy: "\u{1B}[2K").count > 4)
    }

    @Test("rsync's progress2 lines are read; other lines are not progress")
    func progressLines() {
        let progress = RsyncProgress.parse("     12,345,678  45%   10.52MB/s    0:00:03 (xfr#123, to-chk=456/2000)")
        #expect(progress == RsyncProgress(bytes: 12_345_678, percent: 45, rate: "10.52MB/s", files: 123))
        #expect(RsyncProgress.parse("Number of files: 5 (reg: 2, dir: 2)") == nil)
        #expect(RsyncProgress.parse(">f+++++++++ apps/x.py") == nil)
    }

    @Test("plain lines name the worker; progress events print nothing there")
    func plain() {
        #expect(TerminalReporter.line(for: .stepStarted(.stage, host: "w1", detail: "x"), verbose: false) == "[w1] stage... x")
        #expect(TerminalReporter.line(for: .progress(host: "w1", tree: "release", progress: RsyncProgress(bytes: 1, percent: 1, rate: "1kB/s", files: 1)), verbose: true) == nil)
    }
}
