import Foundation
import PackagePlugin

/// Embeds the worker script in DeployerKit at build time (`EmbeddedScripts.worker`), so the tool is
/// one file with no resources beside it and the shipped script is the tested one, byte for byte;
/// and records the commit the build comes from (`EmbeddedScripts.commit`), read from `.git`. The
/// script is kept in parts (`Remote/Scripts/worker/*.sh`, one subject each) joined in name order.
@main
struct EmbedScripts: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let partsDirectory = target.directoryURL.appending(path: "Remote/Scripts/worker")
        let parts = try FileManager.default.contentsOfDirectory(atPath: partsDirectory.path())
            .filter { $0.hasSuffix(".sh") }.sorted().map { partsDirectory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedScripts.swift")
        let git = context.package.directoryURL.appending(path: ".git")
        // The build runs again when HEAD moves or its branch gets a new commit.
        var inputs = parts
        let head = git.appending(path: "HEAD")
        if FileManager.default.fileExists(atPath: head.path()) {
            inputs.append(head)
            if let text = try? String(contentsOf: head, encoding: .utf8), text.hasPrefix("ref: ") {
                let ref = git.appending(path: text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines))
                if FileManager.default.fileExists(atPath: ref.path()) { inputs.append(ref) }
            }
        }
        return [.buildCommand(displayName: "Embedding the worker script and the commit in DeployerKit",
                              executable: try context.tool(named: "embed-scripts").url,
                              arguments: [git.path(), output.path()] + parts.map { $0.path() },
                              inputFiles: inputs, outputFiles: [output])]
    }
}
