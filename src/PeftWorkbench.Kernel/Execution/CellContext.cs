using System.Text;

namespace PeftWorkbench.Kernel.Execution;

/// <summary>Where a running cell's output goes. The kernel sends it over iopub; the headless runner stores it in the notebook.</summary>
public interface IOutputSink
{
    void Stream(string name, string text);
    /// <summary>display_data (update = false) or update_display_data (update = true, displayId set).</summary>
    void Display(IReadOnlyDictionary<string, string> data, string? displayId, bool update);
}

/// <summary>The cell that is running on this async flow: its engine, its cancellation and its console buffers.
/// Held in an AsyncLocal so Console output from the cell, and from tasks and threads it starts, reaches that cell.</summary>
internal sealed class CellContext
{
    static readonly AsyncLocal<CellContext?> current = new();
    public static CellContext? Current { get => current.Value; set => current.Value = value; }

    public ScriptEngine Engine { get; }
    public CancellationToken Token { get; }
    /// <summary>Set when the kernel stopped waiting for this cell (interrupted and still running): its output is dropped.</summary>
    public volatile bool Detached;
    readonly StringBuilder stdout = new(), stderr = new();

    public CellContext(ScriptEngine engine, CancellationToken token) { Engine = engine; Token = token; }

    public void Write(string name, string text)
    {
        if (Detached || text.Length == 0) return;
        var buffer = name == "stderr" ? stderr : stdout;
        string? flush = null;
        lock (buffer)
        {
            buffer.Append(text);
            // Whole lines (and carriage returns, for progress lines) go out at once; partial lines wait.
            if (text.Contains('\n') || text.Contains('\r')) { flush = buffer.ToString(); buffer.Clear(); }
        }
        if (flush is not null) Engine.Sink.Stream(name, flush);
    }

    public void Flush()
    {
        foreach (var (name, buffer) in new[] { ("stdout", stdout), ("stderr", stderr) })
        {
            string text;
            lock (buffer) { text = buffer.ToString(); buffer.Clear(); }
            if (text.Length > 0 && !Detached) Engine.Sink.Stream(name, text);
        }
    }
}

/// <summary>Console.Out/Err replacements installed once per process: text written while a cell runs goes to that
/// cell's stream; anything else goes to the real console.</summary>
internal sealed class ConsoleRouter : TextWriter
{
    static readonly object gate = new();
    static bool installed;
    public static TextWriter OriginalOut { get; private set; } = Console.Out;
    public static TextWriter OriginalError { get; private set; } = Console.Error;

    readonly string name;
    readonly TextWriter fallback;
    ConsoleRouter(string name, TextWriter fallback) { this.name = name; this.fallback = fallback; }
    public override Encoding Encoding => Encoding.UTF8;

    public static void Install()
    {
        lock (gate)
        {
            if (installed) return;
            OriginalOut = Console.Out;
            OriginalError = Console.Error;
            Console.SetOut(new ConsoleRouter("stdout", OriginalOut));
            Console.SetError(new ConsoleRouter("stderr", OriginalError));
            // No stdin channel: a cell that reads the console gets end-of-input rather than hanging the kernel.
            Console.SetIn(TextReader.Null);
            installed = true;
        }
    }

    public override void Write(char value) => Write(value.ToString());
    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));
    public override void Write(string? value)
    {
        if (value is null) return;
        if (CellContext.Current is { } cell) cell.Write(name, value);
        else fallback.Write(value);
    }
    public override void WriteLine(string? value) => Write((value ?? "") + Environment.NewLine);
    public override void Flush() { if (CellContext.Current is null) fallback.Flush(); }
}
