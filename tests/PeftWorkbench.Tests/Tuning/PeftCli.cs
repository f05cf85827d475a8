using System.Diagnostics;
using System.Runtime.InteropServices;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>The repository and the CLI's own build output (same configuration/framework/runtime folders as this test
/// assembly), and running commands as child processes.</summary>
static class PeftCli
{
    public static string Repo => TestPaths.Repo;

    public static string Dll => TestPaths.CliDll();

    public static ProcessStartInfo Info(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return psi;
    }

    /// <summary>`peft ARGS` (dotnet + the built dll) as a child process with its output collected.</summary>
    public static Process StartPeft(IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null) =>
        Start(Info("dotnet", args.Prepend(Dll), env));

    public static Process Start(ProcessStartInfo psi)
    {
        var p = new Process { StartInfo = psi };
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine(); p.BeginErrorReadLine();
        Outputs.Add(p, output);
        return p;
    }

    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Process, System.Text.StringBuilder> Outputs = new();

    /// <summary>Everything the process wrote to stdout and stderr so far, interleaved.</summary>
    public static string Output(Process p) { var b = Outputs.TryGetValue(p, out var o) ? o : new(); lock (b) return b.ToString(); }

    /// <summary>Runs to the end (or kills it at the timeout and fails): exit code and output.</summary>
    public static (int Code, string Output) Run(ProcessStartInfo psi, TimeSpan timeout)
    {
        using var p = Start(psi);
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{psi.FileName} {string.Join(" ", psi.ArgumentList)} ran past {timeout.TotalSeconds} s:\n{Output(p)}");
        }
        p.WaitForExit();
        return (p.ExitCode, Output(p));
    }

    public static (int Code, string Output) Peft(IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string>? env = null) =>
        Run(Info("dotnet", args.Prepend(Dll), env), timeout);

    [DllImport("libc", EntryPoint = "geteuid")] static extern uint GetEuid();
    public static bool IsRoot => OperatingSystem.IsLinux() && GetEuid() == 0;
}

/// <summary>A fact that needs root (it starts daemons); elsewhere it is skipped with the reason.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute(string why)
    {
        if (!PeftCli.IsRoot) Skip = $"needs root: {why} (this run is not root)";
    }
}
