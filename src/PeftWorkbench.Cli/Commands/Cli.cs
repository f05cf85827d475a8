using System.Diagnostics;

namespace PeftWorkbench.Cli.Commands;

/// <summary>What every command shares: the error guard, the comma/repeat list parser, starting this CLI again.</summary>
static class Cli
{
    /// <summary>Bad input and I/O problems end the command with one clear line (exit code 2), not a stack trace. Every
    /// command's action runs inside it. Other exceptions are bugs and keep their stack trace.</summary>
    public static async Task<int> Guard(Func<Task<int>> action)
    {
        try { return await action(); }
        catch (Exception e) when (IsBadInput(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    /// <summary>The exceptions the library throws for bad input, missing files and malformed data (with a message
    /// naming the file, key or value), and those libtorch's shape checks raise.</summary>
    public static bool IsBadInput(Exception e) =>
        e is ArgumentException or IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException
            or KeyNotFoundException or NotSupportedException or FormatException or OverflowException or System.Text.Json.JsonException
            or System.Runtime.InteropServices.ExternalException;

    public static Task<int> Guard(Func<int> action) => Guard(() => Task.FromResult(action()));

    /// <summary>Values given comma-separated or repeated (--tasks a,b --tasks c), trimmed, empties dropped.</summary>
    public static List<string> Split(string[]? values) =>
        (values ?? Array.Empty<string>()).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    /// <summary>Starts this same CLI (dotnet + dll, or the apphost) with <paramref name="args"/>.</summary>
    public static Process StartSelf(params string[] args)
    {
        var psi = new ProcessStartInfo { UseShellExecute = false };
        var exe = System.Environment.ProcessPath!;
        psi.FileName = exe;
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(typeof(Cli).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
    }
}
