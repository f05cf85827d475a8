using System.Runtime.CompilerServices;

namespace PeftWorkbench.Tests.Training;

static class OpenMpSetup
{
    // Before any test touches torch: tests share 2 cores with each other (parallel classes), where
    // spin-waiting OpenMP threads cost 10x (see PeftWorkbench.Training.OpenMpWaitPolicy).
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init() => PeftWorkbench.Training.OpenMpWaitPolicy.Apply();
}
