using PeftWorkbench.Kernel.Execution;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>One engine (one Roslyn session) for the class: Roslyn's first compile is the slow part.</summary>
public sealed class EngineFixture
{
    internal readonly TestSink Sink = new();
    internal readonly ScriptEngine Engine;
    public EngineFixture() => Engine = new ScriptEngine(Sink, Path.GetTempPath(), "smoke");
}

public class EngineTests(EngineFixture fx) : IClassFixture<EngineFixture>
{
    readonly ScriptEngine engine = fx.Engine;
    readonly TestSink sink = fx.Sink;

    CellResult Ok(string code)
    {
        var r = engine.Execute(code);
        Assert.True(r.Status == CellStatus.Ok, $"{r.ErrorName}: {r.ErrorValue}\n{string.Join("\n", r.TracebackLines)}");
        return r;
    }

    [Fact]
    public void StateCarriesAcrossCellsAndSurvivesErrors()
    {
        Ok("var counter = 41;");
        var compile = engine.Execute("counter++;\nvar y = undefinedName + 1;");
        Assert.Equal(CellStatus.Error, compile.Status);
        Assert.Equal("CompilationError", compile.ErrorName);
        Assert.Contains("(line 2, column 9)", compile.ErrorValue);
        Assert.Contains("CS0103", compile.ErrorValue);

        var thrown = engine.Execute("counter++;\nthrow new InvalidOperationException(\"boom at \" + counter);");
        Assert.Equal(CellStatus.Error, thrown.Status);
        Assert.Equal("InvalidOperationException", thrown.ErrorName);
        Assert.Equal("boom at 42", thrown.ErrorValue);
        Assert.Contains(thrown.TracebackLines, l => l.Contains("at cell"));
        Assert.DoesNotContain(thrown.TracebackLines, l => l.Contains("Microsoft.CodeAnalysis.Scripting"));

        // The compile error ran nothing; the exception kept the increment before it.
        Assert.Equal("42", Ok("counter").Value!["text/plain"]);
    }

    [Fact]
    public void ConsoleOutputIsCapturedPerStream()
    {
        var before = sink.Streams.Count;
        Ok("Console.WriteLine(\"to stdout\"); Console.Error.WriteLine(\"to stderr\"); Console.Write(\"partial\");");
        var texts = sink.Streams.Skip(before).ToList();
        Assert.Contains(("stdout", "to stdout\n"), texts);
        Assert.Contains(("stderr", "to stderr\n"), texts);
        Assert.Contains(("stdout", "partial"), texts); // flushed when the cell ended
    }

    [Fact]
    public void WorkbenchTorchAndTablesArePreloaded()
    {
        var r = Ok("var t = torch.ones(2, 3);\nvar df = new DataFrame(new PrimitiveDataFrameColumn<int>(\"n\", new[] { 1, 2 }));\n$\"{Workbench.Version} {t.shape[1]} {df.Rows.Count} {Enumerable.Range(0, 3).Sum()}\"");
        Assert.Equal($"{Workbench.Version} 3 2 3", r.Value!["text/plain"]);
    }

    [Fact]
    public void NugetReferencesAreSatisfiedByShippedPackages()
    {
        Ok("#i \"nuget: ../artifacts/packages\"\n#r \"nuget: PeftWorkbench, 0.1.0\"\n#r \"nuget: TorchSharp\"\n1");
        var missing = engine.Execute("#r \"nuget: NoSuch.Package, 1.0.0\"");
        Assert.Equal("DirectiveError", missing.ErrorName);
        Assert.Contains("NoSuch.Package", missing.ErrorValue);
        Assert.Contains("TorchSharp 0.107.0", missing.ErrorValue); // says what is available
        var wrongVersion = engine.Execute("#r \"nuget: PeftWorkbench, 9.9.9\"");
        Assert.Contains($"ships PeftWorkbench {Workbench.Version} only", wrongVersion.ErrorValue);
    }

    [Fact]
    public void HashRLoadsADllByPathRelativeToTheNotebook()
    {
        using var temp = new TempDir();
        var dir = temp.Path;
        var library = Microsoft.CodeAnalysis.CSharp.CSharpCompilation.Create("GreeterLib",
            new[] { Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText("public static class Greeter { public static string Hello(string n) => \"hello \" + n; }") },
            new[] { Microsoft.CodeAnalysis.MetadataReference.CreateFromFile(typeof(object).Assembly.Location) },
            new Microsoft.CodeAnalysis.CSharp.CSharpCompilationOptions(Microsoft.CodeAnalysis.OutputKind.DynamicallyLinkedLibrary));
        using (var dll = File.Create(Path.Combine(dir, "GreeterLib.dll")))
            Assert.True(library.Emit(dll).Success);
        var own = new ScriptEngine(new TestSink(), dir);
        var r = own.Execute("#r \"GreeterLib.dll\"\nGreeter.Hello(\"notebook\")");
        Assert.True(r.Status == CellStatus.Ok, r.ErrorValue);
        Assert.Equal("hello notebook", r.Value!["text/plain"]);
    }

    [Fact]
    public void MagicsTimeAndCsharp()
    {
        var before = sink.Streams.Count;
        Ok("#!csharp\n#!time\nvar slept = 1;");
        Assert.Contains(sink.Streams.Skip(before), s => s.Text.StartsWith("Wall time: "));
        var other = engine.Execute("#!fsharp\nlet x = 1");
        Assert.Contains("#!fsharp is not supported", other.ErrorValue);
    }

    [Fact]
    public void DisplayAndUpdateShareAnId()
    {
        var before = sink.Displays.Count;
        Ok("var handle = display(\"step 1\");\nhandle.Update(\"step 2\");\n\"done\".Display();");
        var shown = sink.Displays.Skip(before).ToList();
        Assert.Equal(3, shown.Count);
        Assert.False(shown[0].Update);
        Assert.Equal("step 1", shown[0].Data["text/plain"]);
        Assert.True(shown[1].Update);
        Assert.Equal(shown[0].Id, shown[1].Id);
        Assert.Equal("step 2", shown[1].Data["text/plain"]);
        Assert.NotEqual(shown[0].Id, shown[2].Id);
    }

    /// <summary>A training run's progress redrawn in place through display(x).Update (the same cell runs under .NET
    /// Interactive, whose extension's display returns a DisplayedValue with the same Update).</summary>
    [Fact]
    public void TrainingProgressUpdatesOneDisplay()
    {
        var before = sink.Displays.Count;
        Ok("""
            var bar = display("training ...");
            var progress = new NotebookProgress(bar.Update, "tiny");
            for (int step = 1; step <= 3; step++)
                progress.Report(new TrainProgress("train", 0, 1, step, 3, step, 3, 1.0 / step, 1e-3, 100, null, step));
            progress.Report(new TrainProgress("done", 0, 1, 3, 3, 3, 3, 0.25, 1e-3, 100, 87.5, 3));
            """);
        var shown = sink.Displays.Skip(before).ToList();
        Assert.Equal("training ...", shown[0].Data["text/plain"]);
        Assert.All(shown.Skip(1), d => { Assert.True(d.Update); Assert.Equal(shown[0].Id, d.Id); });
        Assert.InRange(shown.Count, 3, 5); // the 250 ms limit may skip step 2; the epoch's end and the run's end always show
        Assert.Contains("tiny [####################] epoch 1/1 step 3/3", shown[^1].Data["text/plain"]);
        Assert.Contains("eval 87.5%", shown[^1].Data["text/plain"]);
    }

    [Fact]
    public async Task InterruptCancelsTheCellToken()
    {
        var run = Task.Run(() => engine.Execute("while (true) { Cancellation.ThrowIfCancellationRequested(); Thread.Sleep(5); }"));
        Assert.True(SpinWait.SpinUntil(() => engine.IsRunning, TimeSpan.FromSeconds(30)));
        engine.Interrupt();
        var r = await run;
        Assert.Equal(CellStatus.Interrupted, r.Status);
        Assert.Equal("KeyboardInterrupt", r.ErrorName);
        Assert.Equal("7", Ok("3 + 4").Value!["text/plain"]); // the session goes on
    }

    [Fact]
    public async Task ACellThatIgnoresCancellationIsLeftBehindAndTheSessionGoesOn()
    {
        var own = new ScriptEngine(new TestSink(), Path.GetTempPath()) { InterruptGrace = TimeSpan.FromMilliseconds(100) };
        var run = Task.Run(() => own.Execute("var before = 5;\nThread.Sleep(Timeout.Infinite);"));
        Assert.True(SpinWait.SpinUntil(() => own.IsRunning, TimeSpan.FromSeconds(30)));
        own.Interrupt();
        var r = await run;
        Assert.Equal(CellStatus.Interrupted, r.Status);
        Assert.Contains("ignores Cancellation", r.ErrorValue);
        Assert.Equal("8", own.Execute("3 + 5").Value!["text/plain"]);
    }

    [Fact]
    public void ModulesShowParameterCountsNotTheirObjectGraph()
    {
        var r = Ok("torch.nn.Linear(4, 3)");
        Assert.StartsWith("Linear: 15 parameters (15 trainable)", r.Value!["text/plain"]);
        Assert.Equal("", Ok("Console.ReadLine() ?? \"\"").Value!["text/plain"]); // no stdin: end of input, no hang
    }

    [Fact]
    public void CompletionInspectionAndCompleteness()
    {
        Ok("var learningRate = 0.1; var layers = new List<int>();");
        var c = engine.Complete("learn", 5);
        Assert.Contains("learningRate", c.Matches);
        Assert.Equal(0, c.CursorStart);
        var members = engine.Complete("layers.Cou", 10);
        Assert.Contains("Count", members.Matches);
        Assert.Equal(7, members.CursorStart);
        var statics = engine.Complete("Math.Sq", 7);
        Assert.Contains("Sqrt", statics.Matches);
        var inspected = engine.Inspect("learningRate", 3);
        Assert.NotNull(inspected);
        Assert.Contains("double", inspected!.Signature);
        Assert.Equal("incomplete", engine.IsComplete("for (int i = 0; i < 3; i++) {"));
        Assert.Equal("complete", engine.IsComplete("var z = 1;"));
        Assert.Equal("complete", engine.IsComplete("#!time\nvar z = 1;"));
    }
}
