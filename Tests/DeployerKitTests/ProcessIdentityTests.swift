import DeployerKit
import Foundation
import Testing

/// A lock holder is taken over only on proof that it is dead (issue 11.6).
@Suite("Process identity")
struct ProcessIdentityTests {
    @Test("this process has an identity that round-trips through its text, and is alive")
    func current() throws {
        let me = try #require(ProcessIdentity.current())
        #expect(me.pid == getpid())
        #expect(ProcessIdentity(me.text) == me)
        #expect(!me.isProvablyDead(observer: me))
    }

    @Test("an ended process of this namespace is provably dead; the same pid with another start time too")
    func ended() throws {
        let me = try #require(ProcessIdentity.current())
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        let identity = ProcessIdentity(boot: me.boot, pidNamespace: me.pidNamespace, pid: child.processIdentifier, start: "1")
        child.waitUntilExit()
        #expect(identity.isProvablyDead(observer: me))
        var reused = me
        reused.start = "1"
        #expect(reused.isProvablyDead(observer: me), "this pid, but started at another time: the holder's pid was reused")
    }

    @Test("a holder in another PID namespace, another boot, or with no identity is never proved dead from here")
    func notProvable() throws {
        let me = try #require(ProcessIdentity.current())
        let unseen = ProcessIdentity(boot: me.boot, pidNamespace: "pid:[1]", pid: 999_999, start: "5")
        #expect(!unseen.isProvablyDead(observer: me))
        let otherBoot = ProcessIdentity(boot: "another-boot", pidNamespace: me.pidNamespace, pid: 999_999, start: "5")
        #expect(!otherBoot.isProvablyDead(observer: me))
        #expect(!unseen.isProvablyDead(observer: nil))
        #expect(ProcessIdentity("not an identity") == nil)
    }
}
