using System.Text.Json.Nodes;
using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Kernel.Tests;

public class NotebookRunnerTests
{
    [Fact]
    public void ParametersCellGetsTheProfileAndTheOutputIsNbformat45()
    {
        using var temp = new TempDir();
        var dir = temp.Path;
        var nb = Tools.WriteNotebook(Path.Combine(dir, "params.ipynb"),
            "Console.WriteLine(\"setup\");",
            "parameters:var Profile = \"default\";",
            "Console.WriteLine($\"profile={Profile}\");");
        var result = NotebookRunner.Run(nb, Path.Combine(dir, "out"), "smoke");
        Assert.True(result.Ok, result.Describe());
        var cells = NotebookRunner.Load(result.ExecutedPath!)["cells"]!.AsArray();
        Assert.Equal(4, cells.Count);
        Assert.Equal("injected-parameters", cells[2]!["metadata"]!["tags"]![0]!.GetValue<string>());
        Assert.Equal("profile=smoke\n", cells[3]!["outputs"]![0]!["text"]!.GetValue<string>());
        Assert.All(cells, c => Assert.False(string.IsNullOrEmpty(c!["id"]?.GetValue<string>())));
        Tools.AssertValidNotebook(result.ExecutedPath!);
    }

    [Fact]
    public void FirstFailingCellStopsTheRunAndIsNamed()
    {
        using var temp = new TempDir();
        var dir = temp.Path;
        var nb = Tools.WriteNotebook(Path.Combine(dir, "fails.ipynb"),
            "var ok = 1;",
            "var y = ok +;",
            "Console.WriteLine(\"never\");");
        var result = NotebookRunner.Run(nb, Path.Combine(dir, "out"), "smoke");
        Assert.False(result.Ok);
        Assert.Equal(1, result.FailedCell);
        Assert.Contains("fails.ipynb: cell 1 failed: CompilationError: (line 1, column", result.Describe());
        var cells = NotebookRunner.Load(result.ExecutedPath!)["cells"]!.AsArray();
        Assert.Empty(cells[3]!["outputs"]!.AsArray()); // the cell after the failure did not run
        Assert.True(File.Exists(result.HtmlPath));
    }

    [Fact]
    public void ChildProcessReportsTheCellThatKilledIt()
    {
        using var temp = new TempDir();
        var dir = temp.Path;
        var nb = Tools.WriteNotebook(Path.Combine(dir, "abort.ipynb"),
            "var a = torch.ones(2, 3);",
            "Console.WriteLine(\"before\");",
            // A libtorch error that aborts the process instead of throwing (see shared ENVIRONMENT notes).
            "a.matmul(torch.ones(2, 3))");
        var run = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "notebooks", "run", nb, "--profile", "smoke", "--out", Path.Combine(dir, "out") });
        Assert.Equal(1, run.Code);
        Assert.Contains("abort.ipynb: cell 2 failed: the notebook process ended before the notebook finished (exit code 134", run.Stderr);
    }

    [Fact]
    public void HtmlRendersMarkdownAndOutputs()
    {
        var nb = new JsonObject
        {
            ["cells"] = new JsonArray(
                new JsonObject { ["cell_type"] = "markdown", ["source"] = "# Title\n\nSome **bold** and `code <x>`.\n\n- one\n- two" },
                new JsonObject
                {
                    ["cell_type"] = "code", ["execution_count"] = 1, ["source"] = "1 < 2",
                    ["outputs"] = new JsonArray(new JsonObject { ["output_type"] = "execute_result", ["data"] = new JsonObject { ["text/plain"] = "True" } }),
                }),
        };
        var html = NotebookHtml.Render(nb, "t");
        Assert.Contains("<h1>Title</h1>", html);
        Assert.Contains("<strong>bold</strong>", html);
        Assert.Contains("<code>code &lt;x&gt;</code>", html);
        Assert.Contains("<li>two</li>", html);
        Assert.Contains("1 &lt; 2", html);
        Assert.Contains("In [1]:", html);
        Assert.Contains("<pre class=\"output\">True</pre>", html);
    }

    /// <summary>The notebooks live in git without outputs (the runner writes executed copies elsewhere), and each has a
    /// `parameters` cell for the runner's profile injection.</summary>
    [Fact]
    public void NotebooksInGitHaveNoOutputsAndAParametersCell()
    {
        var notebooks = Directory.GetFiles(Path.Combine(Tools.RepoRoot, "notebooks"), "*.ipynb");
        Assert.NotEmpty(notebooks);
        foreach (var path in notebooks)
        {
            var name = Path.GetFileName(path);
            var code = NotebookRunner.Load(path)["cells"]!.AsArray().OfType<JsonObject>().Where(c => (string?)c["cell_type"] == "code").ToList();
            foreach (var (cell, i) in code.Select((c, i) => (c, i)))
            {
                Assert.True(cell["outputs"] is JsonArray { Count: 0 }, $"{name}: code cell {i} has outputs: strip them before committing");
                Assert.True(cell["execution_count"] is null, $"{name}: code cell {i} has an execution_count: strip it before committing");
            }
            Assert.Single(code, c => c["metadata"]?["tags"] is JsonArray tags && tags.Any(t => (string?)t == "parameters"));
        }
    }
}
