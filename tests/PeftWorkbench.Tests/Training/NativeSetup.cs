using System.Runtime.CompilerServices;

namespace PeftWorkbench.Tests.Training;

static class NativeSetup
{
    // Before any test touches torch: spin-waiting OpenMP threads cost 10x when the cores are shared
    // (see PeftWorkbench.Training.NativeTuning).
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Init() => PeftWorkbench.Training.NativeTuning.Apply();
}
