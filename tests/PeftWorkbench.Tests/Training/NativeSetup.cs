using System.Runtime.CompilerServices;

namespace PeftWorkbench.Tests.Training;

static class NativeSetup
{
    // Before any test touches torch: spin-waiting OpenMP threads cost 10x when the cores are shared
    // (see PeftWorkbench.Training.NativeTuning).
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init()
    {
        PeftWorkbench.Training.NativeTuning.Apply();
        // Study.RunAll's worker processes run this tree's CLI, not whatever `peft` is on PATH (setup's launcher runs
        // another checkout's build).
        if (Environment.GetEnvironmentVariable("PEFT_CLI") is not { Length: > 0 })
        {
            var dll = Path.Combine(new[] { TestPaths.Repo, "src", "PeftWorkbench.Cli", "bin" }
                .Concat(TestPaths.BuildFolders).Append("peft.dll").ToArray());
            if (File.Exists(dll)) Environment.SetEnvironmentVariable("PEFT_CLI", $"dotnet {dll}");
        }
    }
}
