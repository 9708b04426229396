// Writes a main server's FM workspace for demos and benchmarks (see WorkspaceFixture).
//
//   deployer-fixture create BENCHES SITE [--release NAME] [--profile small|real|FILES:MIB] [--main-address ADDR] [--jobs]
//   deployer-fixture release BENCHES SITE NAME [--profile P] [--seed N] [--jobs]
//
// --jobs makes releases of the job world (JobWorld: a real virtualenv with RQ, and the job app).
import DeployerTestSupport
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("deployer-fixture: \(message)\n".utf8))
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
@MainActor func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name) else { return nil }
    guard index + 1 < arguments.count else { fail("\(name) needs a value") }
    let value = arguments[index + 1]
    arguments.removeSubrange(index...(index + 1))
    return value
}
let profileText = option("--profile") ?? "small"
guard let profile = FixtureProfile.parse(profileText) else { fail("--profile takes small, real or FILES:MIB") }
let releaseName = option("--release") ?? "release_20261120_101500"
let mainAddress = option("--main-address") ?? "10.213.0.1"
let seed = UInt64(option("--seed") ?? "2") ?? 2
let jobs = arguments.contains("--jobs")
arguments.removeAll { $0 == "--jobs" }

do {
    switch arguments.first {
    case "create" where arguments.count == 3:
        try WorkspaceFixture.create(benchesPath: arguments[1], site: arguments[2], release: releaseName,
                                    profile: profile, mainAddress: mainAddress, jobs: jobs)
        print("created \(arguments[1])/\(arguments[2])/workspace with \(releaseName)")
    case "release" where arguments.count == 4:
        let fixture = WorkspaceFixture(benchesPath: arguments[1], site: arguments[2], mainAddress: mainAddress)
        try fixture.addRelease(arguments[3], profile: profile, seed: seed, jobs: jobs)
        try fixture.activate(arguments[3])
        print("added \(arguments[3]) and made it current")
    default:
        fail("usage: deployer-fixture create BENCHES SITE [--release NAME] [--profile P] [--jobs] | release BENCHES SITE NAME [--profile P] [--seed N] [--jobs]")
    }
} catch {
    fail("\(error)")
}
