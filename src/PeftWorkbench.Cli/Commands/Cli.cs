using System.Diagnostics;

namespace PeftWorkbench.Cli.Commands;

/// <summary>What every command shares: the error guard, the comma/repeat list parser, starting this CLI again.</summary>
static class Cli
{
    /// <summary>Bad input and I/O problems end the command with one clear line (exit code 2), not a stack trace.</summary>
    public static Task<int> Guard(Func<Task<int>> action)
    {
        try { return action(); }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return Task.FromResult(2);
        }
    }

    public static Task<int> Guard(Func<int> action) => Guard(() => Task.FromResult(action()));

    /// <summary>Values given comma-separated or repeated (--tasks a,b --tasks c), trimmed, empties dropped.</summary>
    public static List<string> Split(string[]? values) =>
        (values ?? Array.Empty<string>()).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    /// <summary>Starts this same CLI (dotnet + dll, or the apphost) with <paramref name="args"/>.</summary>
    public static Process StartSelf(params string[] args) => StartSelf(false, args);

    /// <summary>As above; with <paramref name="captureOutput"/> the child's stdout and stderr come back through the Process.</summary>
    public static Process StartSelf(bool captureOutput, params string[] args)
    {
        var psi = new ProcessStartInfo { UseShellExecute = false, RedirectStandardOutput = captureOutput, RedirectStandardError = captureOutput };
        var exe = System.Environment.ProcessPath!;
        psi.FileName = exe;
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(typeof(Cli).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
    }
}
