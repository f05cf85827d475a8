using PeftWorkbench.Kernel.Execution;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>Records what an engine emits.</summary>
sealed class TestSink : IOutputSink
{
    public readonly List<(string Name, string Text)> Streams = new();
    public readonly List<(IReadOnlyDictionary<string, string> Data, string? Id, bool Update)> Displays = new();

    public string Stdout { get { lock (this) return string.Concat(Streams.Where(s => s.Name == "stdout").Select(s => s.Text)); } }
    public string Stderr { get { lock (this) return string.Concat(Streams.Where(s => s.Name == "stderr").Select(s => s.Text)); } }

    public void Stream(string name, string text) { lock (this) Streams.Add((name, text)); }
    public void Display(IReadOnlyDictionary<string, string> data, string? displayId, bool update) { lock (this) Displays.Add((data, displayId, update)); }
}
