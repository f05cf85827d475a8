using System.Runtime.InteropServices;
using PeftWorkbench.Training;
using Xunit;

namespace PeftWorkbench.Tests.Training;

public class NativeTuningTests
{
    [Fact]
    public void OnLinuxTheWaitPolicyReachesNativeGetenvAndMallocIsTuned()
    {
        if (!OperatingSystem.IsLinux()) return; // the settings are Linux-specific; elsewhere Settings may be empty
        NativeTuning.Apply(); // idempotent: the module initializer already ran
        Assert.False(string.IsNullOrEmpty(Marshal.PtrToStringAnsi(getenv("OMP_WAIT_POLICY"))));
        if (Environment.GetEnvironmentVariable("PEFT_MALLOC") != "default")
            Assert.Contains(NativeTuning.Settings, s => s.StartsWith("malloc:"));
        Assert.Contains(NativeTuning.Settings, s => s.StartsWith("OMP_WAIT_POLICY="));
    }

    [DllImport("libc")]
    static extern IntPtr getenv(string name);
}
