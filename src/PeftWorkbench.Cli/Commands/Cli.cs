using PeftWorkbench.Tuning;

namespace PeftWorkbench.Cli.Commands;

/// <summary>What every command shares: the error guard, the comma/repeat list parser, this CLI's own command line.</summary>
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

    /// <summary>This same CLI as a command line (<see cref="PeftCommandLine.Current"/>), then <paramref name="args"/>.</summary>
    public static List<string> SelfCommand(params string[] args) =>
        (PeftCommandLine.Current() ?? throw new InvalidOperationException("not running as the peft CLI")).Concat(args).ToList();
}
