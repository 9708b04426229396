import DeployerCLI

await DeployerCLI.main()
