using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PeftWorkbench.Display;
using PeftWorkbench.Kernel.Execution;
using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>Every notebook in notebooks/, smoke profile, once through our kernel (in this process) and once through
/// .NET Interactive (Jupyter's client and the .net-csharp kernelspec that environment/setup.sh installs; CI runs setup
/// first). Shared by the facts below, since a .NET Interactive run takes tens of seconds.</summary>
public sealed class BothKernelRuns : IDisposable
{
    readonly TempDir temp = new();
    public List<(string Name, NotebookRunResult Ours, NotebookRunResult Theirs)> Runs { get; } = new();

    public BothKernelRuns()
    {
        var notebooks = Directory.GetFiles(Path.Combine(Tools.RepoRoot, "notebooks"), "*.ipynb").Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(notebooks);
        foreach (var nb in notebooks)
        {
            var name = Path.GetFileName(nb);
            var ours = NotebookRunner.Run(nb, Path.Combine(temp.Path, "workbench"), "smoke");
            var theirs = JupyterClientRunner.Run(nb, Path.Combine(temp.Path, "dotnet-interactive"), "smoke");
            Runs.Add((name, ours, theirs));
        }
    }

    public void Dispose() => temp.Dispose();
}

public class DotNetInteractiveTests(BothKernelRuns both) : IClassFixture<BothKernelRuns>
{
    static JsonArray Cells(string executed) => NotebookRunner.Load(executed)["cells"]!.AsArray();
    static string Text(JsonNode? n) => n is JsonArray a ? string.Concat(a.Select(x => (string?)x)) : (string?)n ?? "";
    static IEnumerable<JsonObject> Outputs(JsonNode? cell) => (cell?["outputs"] as JsonArray ?? new JsonArray()).OfType<JsonObject>();

    /// <summary>The package's own cell: .NET Interactive reports the restore and the extensions it loads there, ours nothing.</summary>
    static bool IsSetupCell(JsonNode cell) => NotebookRunner.Source(cell.AsObject()).TrimStart().StartsWith("#r \"nuget:", StringComparison.Ordinal);
    static bool Varies(JsonNode cell) => cell["metadata"]?["tags"] is JsonArray tags && tags.Any(t => (string?)t == "varies");

    /// <summary>What a cell showed, by kind: "stream/stdout" and each MIME type of its display and result outputs.</summary>
    static SortedSet<string> Kinds(JsonNode cell) => new(Outputs(cell).SelectMany(o => (string?)o["output_type"] == "stream"
        ? new[] { "stream/" + (string?)o["name"] }
        : (o["data"] as JsonObject ?? new JsonObject()).Select(kv => kv.Key)), StringComparer.Ordinal);

    static string Plain(JsonNode cell) => string.Join("\n---\n", Outputs(cell).Select(o => (string?)o["output_type"] == "stream"
        ? (string?)o["name"] + ": " + Text(o["text"]) : Text(o["data"]?["text/plain"]))).Replace("\r\n", "\n");

    [Fact]
    public void EveryNotebookRunsOnBothKernelsWithoutErrors()
    {
        foreach (var (name, ours, theirs) in both.Runs)
        {
            Assert.True(ours.Ok, "our kernel: " + ours.Describe());
            Assert.True(theirs.Ok, ".NET Interactive: " + theirs.Describe());
            foreach (var path in new[] { ours.ExecutedPath!, theirs.ExecutedPath! })
            {
                Assert.DoesNotContain(Cells(path).SelectMany(Outputs), o => (string?)o["output_type"] == "error");
                Tools.AssertValidNotebook(path);
                // Both keep the notebook's own (.NET Interactive's) kernelspec, so either output opens as a .NET notebook.
                Assert.Equal(".net-csharp", (string?)NotebookRunner.Load(path)["metadata"]!["kernelspec"]!["name"]);
            }
        }
    }

    [Fact]
    public void EveryCellShowsTheSameKindsAndDeterministicTextOnBothKernels()
    {
        foreach (var (name, ours, theirs) in both.Runs)
        {
            var a = Cells(ours.ExecutedPath!);
            var b = Cells(theirs.ExecutedPath!);
            Assert.Equal(a.Count, b.Count);
            int charts = 0, tables = 0;
            for (int i = 0; i < a.Count; i++)
            {
                if ((string?)a[i]!["cell_type"] != "code" || IsSetupCell(a[i]!)) continue;
                var where = $"{name} cell {i}";
                Assert.True(Kinds(a[i]!).SetEquals(Kinds(b[i]!)),
                    $"{where}: ours shows [{string.Join(", ", Kinds(a[i]!))}], .NET Interactive [{string.Join(", ", Kinds(b[i]!))}]");
                foreach (var (cell, kernel) in new[] { (a[i]!, "ours"), (b[i]!, ".NET Interactive") })
                    foreach (var data in Outputs(cell).Select(o => o["data"]).OfType<JsonObject>())
                    {
                        var plain = Text(data["text/plain"]);
                        if (plain == NotebookDisplay.ChartText)
                        {
                            charts++;
                            Assert.Contains("Plotly.newPlot", Text(data["text/html"]));
                        }
                        if (Regex.IsMatch(plain, @"\[\d+ rows x \d+ columns\]$"))
                        {
                            tables++;
                            Assert.Contains("<table", Text(data["text/html"]));
                        }
                    }
                if (!Varies(a[i]!)) Assert.True(Plain(a[i]!) == Plain(b[i]!), $"{where} (tag it \"varies\" if its text may differ):\nours:\n{Plain(a[i]!)}\n.NET Interactive:\n{Plain(b[i]!)}");
            }
            Assert.True(charts % 2 == 0 && tables % 2 == 0, $"{name}: charts and tables come in pairs (ours, theirs)");
        }
    }

    [Fact]
    public void AChartFromDotNetInteractiveRendersOfflineInHeadlessChromium()
    {
        var html = both.Runs.Select(r => r.Theirs.HtmlPath!).FirstOrDefault(p => File.ReadAllText(p).Contains("Plotly.newPlot"));
        Assert.True(html is not null, "no notebook in notebooks/ shows a chart");
        Assert.DoesNotContain("src=\"https://cdn.plot.ly", File.ReadAllText(html)); // plotly.js came from the package's extension, inline
        var dom = Tools.RenderOffline(html);
        Assert.Contains("class=\"plot-container plotly\"", dom);
        Assert.Contains("<svg class=\"main-svg\"", dom);
    }
}

/// <summary>The package on a fresh .NET Interactive kernel with an empty NuGet cache (only the local feed and the
/// registry), and wrong setup cells in both kernels.</summary>
public class DotNetInteractivePackageTests
{
    /// <summary>With NUGET_PACKAGES unset the restore lands in ~/.nuget/packages; set, it lands there (.NET Interactive's
    /// restore honours it). The test sets or removes it itself, so a user's own NUGET_PACKAGES changes nothing.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FreshKernelWithAnEmptyNuGetCacheRestoresThePackageAndTrainsASmokeLoraRun(bool nugetPackagesSet)
    {
        using var temp = new TempDir();
        var feed = LocalFeed.Folder();
        Assert.True(feed is not null && LocalFeed.Problem() is null, LocalFeed.Problem());
        var nb = Tools.WriteNotebook(Path.Combine(temp.Path, "fresh.ipynb"),
            "#r \"nuget: PeftWorkbench, 9.9.9\"",
            $"#r \"nuget: PeftWorkbench, {Workbench.Version}\"",
            """
            var task = Suite.Mini.Load("mnist");
            var vit = VisionTransformer.Pretrained("mini");
            vit.ResetHead(task.NumClasses, seed: 0);
            var lora = Peft.Attach(vit, new LoraOptions { Rank = 8 });
            var history = Trainer.Fit(lora, task.Train800, task.Val200, TrainOptions.ForProfile("smoke"), cancel: Cancellation);
            Console.WriteLine($"epochs {history.Epochs.Count}, val200 top-1 {history.LastEvalTop1:F1} %, native load: {TorchNatives.Status}");
            Console.WriteLine($"libtorch from {TorchNatives.LibtorchDir()}");
            """,
            "var progress = display(\"step 1 of 2\");\nprogress.Update(\"step 2 of 2\");",
            "Workbench.Version");
        // An empty home gives the kernel an empty ~/.nuget/packages (or NUGET_PACKAGES names another empty folder), and a
        // user NuGet config with only the registry and our feed. Data and kernelspecs stay where setup put them.
        var home = Path.Combine(temp.Path, "home");
        var cache = nugetPackagesSet ? Path.Combine(temp.Path, "nuget-packages") : Path.Combine(home, ".nuget", "packages");
        Directory.CreateDirectory(Path.Combine(home, ".nuget", "NuGet"));
        File.WriteAllText(Path.Combine(home, ".nuget", "NuGet", "NuGet.Config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
                <add key="{LocalFeed.SourceName}" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        var realHome = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var env = new Dictionary<string, string?>
        {
            ["NUGET_PACKAGES"] = nugetPackagesSet ? cache : null,
            ["HOME"] = home, ["PEFT_DATA"] = Workbench.DataDir, ["DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1",
            ["JUPYTER_PATH"] = string.Join(':', new[] { Environment.GetEnvironmentVariable("JUPYTER_PATH"), Path.Combine(realHome, ".local", "share", "jupyter") }.Where(p => !string.IsNullOrEmpty(p))),
        };
        var result = JupyterClientRunner.Run(nb, Path.Combine(temp.Path, "out"), "smoke", stopOnError: false, environment: env);
        Assert.True(result.ExecutedPath is not null, result.Describe());
        var cells = NotebookRunner.Load(result.ExecutedPath!)["cells"]!.AsArray();
        Assert.Equal("injected-parameters", (string?)cells[0]!["id"]); // the notebook has no parameters cell: Profile goes first
        // Everything cell i of the notebook showed (its streams, texts, HTML and error), as plain text.
        string All(int i) => string.Join("\n", Flatten(cells[i + 1]!["outputs"]));
        static IEnumerable<string> Flatten(JsonNode? n) => n switch
        {
            JsonObject o => o.SelectMany(kv => Flatten(kv.Value)),
            JsonArray a => a.SelectMany(Flatten),
            JsonValue v when v.TryGetValue<string>(out var s) => new[] { s },
            _ => Array.Empty<string>(),
        };

        // A version the feed lacks: NuGet's restore error names the package, the version and the sources it searched.
        var bad = All(0);
        Assert.True(bad.Contains("PeftWorkbench"), "cell 0 showed: " + bad[..Math.Min(3000, bad.Length)]);
        Assert.Contains("9.9.9", bad);
        Assert.Contains(LocalFeed.SourceName, bad);
        // ... and the kernel still restores the right version, loads torch from the fresh cache and trains.
        Assert.DoesNotContain("\"error\"", All(2));
        Assert.Matches(@"epochs 1, val200 top-1 \d+\.\d %, native load: ", All(2));
        Assert.True(Directory.Exists(Path.Combine(cache, "peftworkbench", Workbench.Version)), "restored into the empty cache");
        // NativeTuning's MKL switch looks for libtorch where TorchNatives finds it: here, in the fresh cache.
        Assert.Contains($"libtorch from {Path.Combine(cache, "libtorch-cpu-linux-x64")}", All(2));
        // display(x).Update(y) replaces the shown value in place (1.0.712001's own display() does not over Jupyter).
        var shown = Assert.Single(cells[4]!["outputs"]!.AsArray());
        Assert.Equal("step 2 of 2", (string?)shown!["data"]!["text/plain"]);
        Assert.Contains(Workbench.Version, All(4));
    }

    [Fact]
    public void OurKernelNamesTheFeedForAMissingVersionAndKeepsWorking()
    {
        var engine = new ScriptEngine(new TestSink());
        var bad = engine.Execute("#r \"nuget: PeftWorkbench, 9.9.9\"");
        Assert.Equal(CellStatus.Error, bad.Status);
        Assert.Contains("PeftWorkbench, 9.9.9", bad.ErrorValue);
        Assert.Contains(LocalFeed.Folder() ?? "environment/setup.sh", bad.ErrorValue);
        var good = engine.Execute($"#r \"nuget: PeftWorkbench, {Workbench.Version}\"\nWorkbench.Version");
        Assert.Equal(CellStatus.Ok, good.Status);
        Assert.Equal(Workbench.Version, good.Value!["text/plain"]);
    }

    [Fact]
    public void WithoutTheFeedBothRunnersSayWhichCommandCreatesIt()
    {
        using var temp = new TempDir();
        var nb = Tools.WriteNotebook(Path.Combine(temp.Path, "nofeed.ipynb"), "#r \"nuget: PeftWorkbench, 9.9.9\"");
        var env = new Dictionary<string, string> { ["HOME"] = temp.Path }; // no user NuGet config: setup never ran
        var theirs = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "notebooks", "run", nb, "--kernel", "dotnet-interactive", "--profile", "smoke", "--out", Path.Combine(temp.Path, "out") }, env);
        Assert.Equal(2, theirs.Code);
        Assert.Contains("environment/setup.sh", theirs.Stderr);
        var ours = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "notebooks", "run", nb, "--profile", "smoke", "--out", Path.Combine(temp.Path, "out") }, env);
        Assert.Equal(1, ours.Code);
        Assert.Contains("is not set up: bash environment/setup.sh", ours.Stderr);
    }

    [Fact]
    public void TheExtensionImportsTheNamespacesOurKernelImports()
    {
        var dib = File.ReadAllText(Path.Combine(Tools.RepoRoot, "src", "PeftWorkbench", "Interactive", "extension.dib"));
        var usings = Regex.Matches(dib, @"^using [^(=\n]+;$", RegexOptions.Multiline).Select(m => m.Value).ToList();
        Assert.Equal(NotebookImports.UsingDirectives.Split('\n'), usings);
    }
}
