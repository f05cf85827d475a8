using System.Diagnostics;
using System.Text.Json.Nodes;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Kernel.Notebooks;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Kernel.Tests.Fuzz;

/// <summary>Cells that misbehave, through `peft notebooks run` (a child process per notebook) and through the kernel:
/// each run ends within its bound, with a non-zero exit naming the cell, and never prints "ok" for a notebook that did
/// not finish.</summary>
public class CellFuzzTests
{
    static (int Code, string Stdout, string Stderr, TimeSpan Took) RunNotebook(string dir, string cell, params string[] options)
    {
        var nb = Tools.WriteNotebook(Path.Combine(dir, "hostile.ipynb"), "var before = 1;", cell, "Console.WriteLine(\"after\");");
        var clock = Stopwatch.StartNew();
        var (code, stdout, stderr) = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "notebooks", "run", nb, "--profile", "smoke", "--out", Path.Combine(dir, "out") }.Concat(options), timeoutSeconds: 180);
        return (code, stdout, stderr, clock.Elapsed);
    }

    [Fact]
    public void EnvironmentExitInACellIsAFailureNamingTheCell()
    {
        int tried = 0;
        foreach (var exit in FuzzTable.Scale > 1 ? new[] { 0, 1, 2, 3, 77 } : new[] { 0, 2 })
        {
            using var temp = new TempDir();
            var run = RunNotebook(temp.Path, $"Environment.Exit({exit});");
            Assert.Equal(1, run.Code);
            Assert.DoesNotContain(": ok", run.Stdout);
            Assert.Contains($"hostile.ipynb: cell 1 failed: the notebook process ended before the notebook finished (exit code {exit}", run.Stderr);
            tried++;
        }
        FuzzTable.Record("cells", "Environment.Exit(n) in a cell", tried, tried, "6");
    }

    [Fact]
    public void AnUncooperativeCellEndsAtTheCellTimeout()
    {
        using var temp = new TempDir();
        // Generous for the cells that do stop: compiling one takes seconds on a loaded machine.
        var run = RunNotebook(temp.Path, "while (true) { }", "--cell-timeout", "8");
        Assert.Equal(1, run.Code);
        Assert.True(run.Stderr.Contains("hostile.ipynb: cell 1 failed: CellTimeout: ran over the cell timeout of 8 s and ignored Cancellation"), run.Stderr);
        Assert.True(run.Took < TimeSpan.FromSeconds(120), $"took {run.Took}");
        // The executed notebook shows the cells up to the one that timed out.
        var cells = NotebookRunner.Load(Path.Combine(temp.Path, "out", "hostile.ipynb"))["cells"]!.AsArray();
        Assert.Equal("error", cells[2]!["outputs"]![0]!["output_type"]!.GetValue<string>());
        FuzzTable.Record("cells", "while (true) { } under --cell-timeout", 1, 1, "5");
    }

    [Fact]
    public void ACellThatEndsTheProcessIsNamed()
    {
        int tried = 0;
        var cells = new List<string>
        {
            // An exception on a thread of the cell's own: .NET ends the process.
            "new System.Threading.Thread(() => throw new InvalidOperationException(\"from a thread\")).Start(); System.Threading.Thread.Sleep(10_000);",
        };
        if (FuzzTable.Scale > 1) cells.Add("int Deep(int n) => Deep(n + 1) + 1; Deep(0)"); // stack overflow
        foreach (var cell in cells)
        {
            using var temp = new TempDir();
            var run = RunNotebook(temp.Path, cell);
            Assert.Equal(1, run.Code);
            Assert.Contains("hostile.ipynb: cell 1 failed: the notebook process ended", run.Stderr);
            tried++;
        }
        FuzzTable.Record("cells", "a cell ending its process (thread exception, stack overflow)", tried, tried, "8");
    }

    [Fact]
    public void SigtermToTheRunnerEndsItsChild()
    {
        using var temp = new TempDir();
        var pidFile = Path.Combine(temp.Path, "child.pid");
        var nb = Tools.WriteNotebook(Path.Combine(temp.Path, "sleeps.ipynb"),
            "System.IO.File.WriteAllText(\"child.pid\", Environment.ProcessId.ToString()); System.Threading.Thread.Sleep(300_000);");
        var psi = new ProcessStartInfo(Tools.Dotnet) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { Tools.Peft, "notebooks", "run", nb, "--profile", "smoke", "--out", Path.Combine(temp.Path, "out") }) psi.ArgumentList.Add(a);
        using var runner = Process.Start(psi)!;
        _ = runner.StandardOutput.ReadToEndAsync();
        _ = runner.StandardError.ReadToEndAsync();
        int child = 0;
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
            while (!(File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile), out child)) && DateTime.UtcNow < deadline) Thread.Sleep(100);
            Assert.True(child > 0, "the notebook never started its cell");
            Assert.Equal(0, Tools.Run("kill", new[] { "-TERM", runner.Id.ToString() }).Code);
            Assert.True(runner.WaitForExit(20_000), "the runner ignored SIGTERM");
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (Alive(child) && DateTime.UtcNow < deadline) Thread.Sleep(100);
            Assert.False(Alive(child), $"the notebook process {child} outlived its runner");
        }
        finally
        {
            if (!runner.HasExited) runner.Kill(entireProcessTree: true);
            if (child > 0 && Alive(child)) Process.GetProcessById(child).Kill();
        }
        FuzzTable.Record("cells", "SIGTERM to `peft notebooks run`", 1, 1, "6");
    }

    /// <summary>Running and not a zombie (a killed orphan waits for init to reap it).</summary>
    static bool Alive(int pid)
    {
        try { return !File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].StartsWith('Z'); }
        catch (IOException) { return false; }
    }

    [Fact]
    public void HalfAMillionLinesOfOutputFinish()
    {
        using var temp = new TempDir();
        int lines = 500_000 * Math.Min(FuzzTable.Scale, 4);
        var nb = Tools.WriteNotebook(Path.Combine(temp.Path, "loud.ipynb"), $"for (int i = 0; i < {lines}; i++) Console.WriteLine(i);");
        var clock = Stopwatch.StartNew();
        var result = NotebookRunner.Run(nb, Path.Combine(temp.Path, "out"), "smoke");
        Assert.True(result.Ok, result.Describe());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"{lines} lines took {clock.Elapsed}");
        var text = NotebookRunner.Load(result.ExecutedPath!)["cells"]![1]!["outputs"]![0]!["text"]!.GetValue<string>();
        Assert.Equal(Enumerable.Range(0, lines).Sum(i => i.ToString().Length + 1), text.Length);
        FuzzTable.Record("cells", $"{lines:N0} lines of output (headless runner)", 1, 1, "7");
    }

    [Fact]
    public void AnInterruptedCellThatIgnoresCancellationEndsTheKernelProcess()
    {
        using var temp = new TempDir();
        var stop = Path.Combine(temp.Path, "stop");
        using var running = new RunningKernel();
        try
        {
            using var client = new KernelClient(running.Connection);
            client.Request(client.Shell, "execute_request", new JsonObject { ["code"] = "1" }, out _); // past the warm-up
            // Busy, and deaf to Cancellation, until the test creates the stop file.
            var request = client.Send(client.Shell, "execute_request", new JsonObject { ["code"] = $"Console.WriteLine(\"looping\"); while (!System.IO.File.Exists({System.Text.Json.JsonSerializer.Serialize(stop)})) {{ }}" });
            Assert.NotNull(client.WaitFor(m => m.MsgType == "stream" && m.ParentHeader["msg_id"]?.GetValue<string>() == request.MsgId, TimeSpan.FromSeconds(60)));
            client.Request(client.Control, "interrupt_request", new JsonObject(), out _);
            var reply = client.Receive(client.Shell)!;
            Assert.Equal("KeyboardInterrupt", reply.Content["ename"]!.GetValue<string>());
            Assert.True(running.Thread.Join(TimeSpan.FromSeconds(20)), "the kernel kept serving with a cell it cannot stop");
            Assert.True(running.Kernel.AbandonedCell);
            // One message, said once: the error names what happens (the process ends), and no stream line repeats or contradicts it.
            Assert.Contains("the kernel ends its process", reply.Content["evalue"]!.GetValue<string>());
            Assert.DoesNotContain("keeps running", reply.Content["evalue"]!.GetValue<string>());
            Assert.Null(client.WaitFor(m => m.MsgType == "stream" && (m.Content["text"]?.GetValue<string>() ?? "") != "looping\n", TimeSpan.FromSeconds(2)));
        }
        finally { File.WriteAllText(stop, ""); }
        FuzzTable.Record("cells", "interrupt of while (true) in the kernel", 1, 1, "5");
    }
}
