using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Kernel.Tests;

public class NotebookIndexTests
{
    /// <summary>`peft notebooks run --keep-going` over a finding notebook, one without a finding cell and one that fails
    /// before its finding cell: every notebook runs, the exit code says one failed, and the index has one line each.</summary>
    [Fact]
    public void TheIndexHasEachNotebooksFindingOrSaysWhyNot()
    {
        using var temp = new TempDir();
        var dir = temp.Path;
        var finding = Tools.WriteNotebook(Path.Combine(dir, "02-finding.ipynb"),
            "parameters:var Profile = \"default\";",
            "var spread = 2.5;",
            "finding:Console.WriteLine($\"Finding 1 (test): mini suite: spread {spread:F1} points ({Profile}); paper: 3.0 points.\");",
            "verdict:Console.WriteLine(\"spread: agrees; full FT: inconclusive under this budget\");",
            "Console.WriteLine(\"after the finding\");");
        var plain = Tools.WriteNotebook(Path.Combine(dir, "00-tour.ipynb"), "Console.WriteLine(\"a tour\");");
        var fails = Tools.WriteNotebook(Path.Combine(dir, "03-fails.ipynb"),
            "var x = 1;",
            "throw new InvalidOperationException(\"no store here\");",
            "finding:Console.WriteLine(\"Finding 2: never printed\");");
        var outDir = Path.Combine(dir, "out");
        var run = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "notebooks", "run", finding, plain, fails, "--profile", "smoke", "--out", outDir, "--keep-going" });
        Assert.Equal(1, run.Code);
        Assert.Contains($"index: {Path.Combine(outDir, "index.html")}", run.Stdout);

        var md = File.ReadAllLines(Path.Combine(outDir, "index.md"));
        Assert.Contains(md, l => l.StartsWith("3 notebooks, 1 FAILED; profile smoke; backbone mini-hand; kernel workbench;", StringComparison.Ordinal));
        string Line(string name) => Assert.Single(md, l => l.StartsWith($"| [{name}]({name}.html) | smoke | ", StringComparison.Ordinal));
        Assert.EndsWith("| spread: agrees; full FT: inconclusive under this budget | Finding 1 (test): mini suite: spread 2.5 points (smoke); paper: 3.0 points. |", Line("02-finding"));
        Assert.EndsWith("| no finding cell (not a finding notebook) |", Line("00-tour"));
        Assert.EndsWith("| FAILED: cell 1: InvalidOperationException: no store here |", Line("03-fails"));
        Assert.Matches(@"\| \d+\.\d s \|", Line("00-tour"));

        var html = File.ReadAllText(Path.Combine(outDir, "index.html"));
        Assert.Contains("<a href=\"02-finding.html\">02-finding</a>", html);
        // The verdict is recorded under the profile and the default backbone, for a later run on another backbone to show beside its own.
        Assert.Equal("spread: agrees; full FT: inconclusive under this budget", VerdictMemory.Load(outDir).Get("smoke", "mini-hand", "02-finding")?.Verdict);
        Assert.Contains("<td class=\"failed\">FAILED: cell 1: InvalidOperationException: no store here</td>", html);
        Assert.True(File.Exists(Path.Combine(outDir, "02-finding.html")));
    }

    /// <summary>The index's verdict column reads a notebook's `verdict` cell: every notebook in notebooks/ with a `finding`
    /// cell has one, before it (04 and 05 had none).</summary>
    [Fact]
    public void EveryFindingNotebookHasAVerdictCellBeforeItsFindingCell()
    {
        var findings = 0;
        foreach (var path in Directory.GetFiles(Path.Combine(Tools.RepoRoot, "notebooks"), "*.ipynb").Order(StringComparer.Ordinal))
        {
            var tags = (NotebookRunner.Load(path)["cells"] as System.Text.Json.Nodes.JsonArray)!.Select(c =>
                (c?["metadata"]?["tags"] as System.Text.Json.Nodes.JsonArray)?.Select(t => (string?)t).ToList() ?? new List<string?>()).ToList();
            int finding = tags.FindIndex(t => t.Contains(NotebookIndex.FindingTag)), verdict = tags.FindIndex(t => t.Contains(NotebookIndex.VerdictTag));
            if (finding < 0) continue;
            findings++;
            Assert.True(verdict >= 0 && verdict < finding, $"{Path.GetFileName(path)}: its finding cell has no verdict cell before it");
        }
        Assert.Equal(5, findings); // 02, 03, 04, 05, 07
    }

    [Fact]
    public void ANotebookWithoutAnExecutedCopyIsReportedAsSuch()
    {
        using var temp = new TempDir();
        var entries = new[]
        {
            new IndexEntry("notebooks/05-crash.ipynb", "default", "workbench", 3.0, false, null, null, "exit code 1; no executed notebook was written"),
            new IndexEntry("notebooks/04-gone.ipynb", "default", "dotnet-interactive", 125.0, true, Path.Combine(temp.Path, "missing.ipynb"), null),
        };
        NotebookIndex.Write(temp.Path, entries);
        var md = File.ReadAllText(Path.Combine(temp.Path, "index.md"));
        Assert.Contains("| 05-crash | default | 3.0 s |  | FAILED: exit code 1; no executed notebook was written |", md);
        Assert.Contains("| 04-gone | default | 2 min 05 s |  | no executed notebook |", md);
        Assert.Contains("kernel workbench, dotnet-interactive", md);
    }

    /// <summary>Issue 25: the old backbone's verdicts stay in the index beside the new one's. A run on mini-hand into a
    /// folder where a run on mini recorded verdicts shows both columns; another profile's verdicts are not shown; a row
    /// without a verdict this time (a failed notebook) keeps the verdict recorded before.</summary>
    [Fact]
    public void TheIndexShowsVerdictsRecordedOnAnotherBackboneBesideThisRuns()
    {
        using var temp = new TempDir();
        var earlier = new DateTime(2026, 12, 1, 12, 0, 0, DateTimeKind.Utc);
        var memory = new VerdictMemory();
        memory.Set("default", "mini", "02-finding1", new RecordedVerdict("spread: disagrees", earlier));
        memory.Set("default", "mini-hand", "02-finding1", new RecordedVerdict("spread: agrees", earlier));
        memory.Set("smoke", "mini-tiny", "02-finding1", new RecordedVerdict("spread: inconclusive", earlier));
        memory.Save(temp.Path);
        var entries = new[] { new IndexEntry("notebooks/02-finding1.ipynb", "default", "workbench", 3.0, false, null, null, "exit code 1") };

        NotebookIndex.Write(temp.Path, entries, backbone: "mini-hand");
        var md = File.ReadAllLines(Path.Combine(temp.Path, "index.md"));
        Assert.Contains("| notebook | profile | wall time | verdict (mini-hand) | verdict on mini, recorded | finding (ours; the paper's) |", md);
        Assert.Contains(md, l => l.StartsWith("| 02-finding1 | default | 3.0 s |  | spread: disagrees (2026-12-0", StringComparison.Ordinal));
        Assert.DoesNotContain(md, l => l.Contains("mini-tiny", StringComparison.Ordinal));
        // The failed row printed no verdict: mini-hand's recorded one stays for the next run.
        Assert.Equal("spread: agrees", VerdictMemory.Load(temp.Path).Get("default", "mini-hand", "02-finding1")?.Verdict);

        // Alone (no other backbone recorded under this profile): one verdict column, named after the backbone.
        using var alone = new TempDir();
        NotebookIndex.Write(alone.Path, entries);
        Assert.Contains("| notebook | profile | wall time | verdict (mini-hand) | finding (ours; the paper's) |", File.ReadAllLines(Path.Combine(alone.Path, "index.md")));
    }

    [Fact]
    public void AnUnreadableVerdictRecordIsSetAsideNamedNotOverwritten()
    {
        using var temp = new TempDir();
        var path = VerdictMemory.PathIn(temp.Path);
        File.WriteAllText(path, "{\"default\": {\"mini\": [1, 2]}}");
        var warnings = new List<string>();
        NotebookIndex.Write(temp.Path, new[] { new IndexEntry("nb/00-tour.ipynb", "default", "workbench", 1.0, true, null, null) }, warn: warnings.Add);
        var warning = Assert.Single(warnings);
        Assert.Contains(path, warning);
        Assert.Contains("'default.mini' is not an object", warning);
        Assert.Equal("{\"default\": {\"mini\": [1, 2]}}", File.ReadAllText(path + ".unreadable"));
        Assert.True(File.Exists(path)); // a new, readable record
        Assert.Null(VerdictMemory.Load(temp.Path).Get("default", "mini", "00-tour"));
    }
}
