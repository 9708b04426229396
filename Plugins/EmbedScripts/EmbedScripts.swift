import Foundation
import PackagePlugin

/// Embeds the worker script in DeployerKit at build time (`EmbeddedScripts.worker`), so the tool is
/// one file with no resources beside it and the shipped script is the tested one, byte for byte;
/// and records the commit the build comes from (`EmbeddedScripts.commit`), read from `.git`.
@main
struct EmbedScripts: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let script = target.directoryURL.appending(path: "Remote/Scripts/worker.sh")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedScripts.swift")
        let git = context.package.directoryURL.appending(path: ".git")
        // The build runs again when HEAD moves or its branch gets a new commit.
        var inputs = [script]
        let head = git.appending(path: "HEAD")
        if FileManager.default.fileExists(atPath: head.path()) {
            inputs.append(head)
            if let text = try? String(contentsOf: head, encoding: .utf8), text.hasPrefix("ref: ") {
                let ref = git.appending(path: text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines))
                if FileManager.default.fileExists(atPath: ref.path()) { inputs.append(ref) }
            }
        }
        return [.buildCommand(displayName: "Embedding worker.sh and the commit in DeployerKit",
                              executable: try context.tool(named: "embed-scripts").url,
                              arguments: [script.path(), git.path(), output.path()],
                              inputFiles: inputs, outputFiles: [output])]
    }
}
