using System.Text.Json.Nodes;
using PeftWorkbench.Fuzz;

namespace PeftWorkbench.Kernel.Tests.Fuzz;

/// <summary>
/// Issue 26 items 12 and 13: `peft notebooks run` checks what it is given before the first cell runs: a notebook named
/// index, two notebooks with one name, a string nbformat_minor, a numeric cell id, tags that are not strings, an
/// unknown --profile. Each is a one-line error (exit 2) naming the notebook (and the cell), and no cell has run.
/// </summary>
public class NotebookRunFuzzTests
{
    /// <summary>A notebook whose first cell leaves a file behind when it runs.</summary>
    static string Notebook(string path, string marker, Action<JsonObject>? spoil = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Tools.WriteNotebook(path, $"parameters:var Profile = \"smoke\"; System.IO.File.WriteAllText(@\"{marker}\", \"ran\");", "Console.WriteLine(1);");
        var nb = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        spoil?.Invoke(nb);
        File.WriteAllText(path, nb.ToJsonString());
        return path;
    }

    [Fact]
    public void BadRunsAreRefusedBeforeTheFirstCell()
    {
        using var temp = new TempDir();
        var marker = Path.Combine(temp.Path, "ran.txt");
        var outDir = Path.Combine(temp.Path, "out");
        var cases = new (string What, string[] Notebooks, string Profile, string[] Named)[]
        {
            ("a notebook named index", new[] { Notebook(Path.Combine(temp.Path, "a", "index.ipynb"), marker) }, "smoke", new[] { "index.ipynb" }),
            ("two notebooks with one name", new[] { Notebook(Path.Combine(temp.Path, "a", "tour.ipynb"), marker), Notebook(Path.Combine(temp.Path, "b", "tour.ipynb"), marker) }, "smoke", new[] { "a/tour.ipynb", "b/tour.ipynb" }),
            ("a string nbformat_minor", new[] { Notebook(Path.Combine(temp.Path, "c", "minor.ipynb"), marker, nb => nb["nbformat_minor"] = "5") }, "smoke", new[] { "minor.ipynb", "nbformat_minor" }),
            ("a numeric cell id", new[] { Notebook(Path.Combine(temp.Path, "c", "id.ipynb"), marker, nb => nb["cells"]![1]!["id"] = 7) }, "smoke", new[] { "id.ipynb", "cell 1", "id" }),
            ("tags that are not strings", new[] { Notebook(Path.Combine(temp.Path, "c", "tags.ipynb"), marker, nb => nb["cells"]![1]!["metadata"] = new JsonObject { ["tags"] = new JsonArray(1, null) }) }, "smoke", new[] { "tags.ipynb", "cell 1", "tags" }),
            ("an unknown profile", new[] { Notebook(Path.Combine(temp.Path, "c", "fine.ipynb"), marker) }, "nosuch", new[] { "nosuch", "smoke" }),
        };
        var outcomes = new Outcomes();
        var failures = new List<string>();
        foreach (var (what, notebooks, profile, named) in cases)
        {
            File.Delete(marker);
            var (code, stdout, stderr) = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "notebooks", "run" }.Concat(notebooks).Concat(new[] { "--profile", profile, "--out", outDir }), timeoutSeconds: 180);
            var problems = new List<string>();
            if (File.Exists(marker)) problems.Add("a cell ran");
            if (code != 2) problems.Add($"exit {code}");
            foreach (var n in named) if (!stderr.Contains(n)) problems.Add($"stderr does not name {n}");
            if (stderr.Trim().Split('\n').Length != 1) problems.Add("not one line");
            if (stderr.Contains("   at ")) problems.Add("a stack trace");
            if (problems.Count == 0) { outcomes.Clean++; continue; }
            if (File.Exists(marker) && code == 0) outcomes.SilentWrong++;
            else outcomes.Crash++;
            failures.Add($"{what}: {string.Join(", ", problems)}; exit {code}; stderr: {stderr.Trim()}");
        }
        FuzzTable.Record("notebooks", "index.ipynb, one name twice, bad nbformat/id/tags, unknown profile", outcomes, "26.12/13");
        Assert.True(failures.Count == 0, outcomes + "\n" + string.Join("\n", failures));
    }
}
