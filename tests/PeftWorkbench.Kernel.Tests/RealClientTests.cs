using System.Text.Json.Nodes;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>Jupyter's own client (Debian's python3-nbclient + jupyter-client) runs a notebook through the kernelspec that
/// `peft kernel install` writes.</summary>
public class RealClientTests
{
    const string NbClientScript = """
        import sys, nbformat
        from nbclient import NotebookClient
        nb = nbformat.read(sys.argv[1], as_version=4)
        NotebookClient(nb, kernel_name="peft-workbench", timeout=120, startup_timeout=120, allow_errors=True).execute()
        nbformat.validate(nb)
        nbformat.write(nb, sys.argv[2])
        """;

    /// <summary>When the client itself fails (here: no such kernelspec), the result carries its last messages, so a CI log
    /// that shows only the failure still says why.</summary>
    [Fact]
    public void AClientThatCannotStartItsKernelSaysWhyInTheResult()
    {
        using var temp = new TempDir();
        var nb = Tools.WriteNotebook(Path.Combine(temp.Path, "k.ipynb"), "1 + 1");
        var result = PeftWorkbench.Kernel.Notebooks.JupyterClientRunner.Run(nb, Path.Combine(temp.Path, "out"), "smoke", kernelName: "no-such-kernel-here");
        Assert.False(result.Ok);
        Assert.Contains("no-such-kernel-here", result.Describe());
        Assert.Contains("NoSuchKernel", result.Describe());
    }

    /// <summary>A kernel that dies at start prints its exception line before a long stack, and the client's traceback
    /// follows: the result still names the exception (CI showed only stack frames when the tail alone was kept).</summary>
    [Fact]
    public void AKernelThatDiesAtStartIsNamedByItsExceptionLineNotOnlyItsStack()
    {
        using var temp = new TempDir();
        var spec = Path.Combine(temp.Path, "jupyter", "kernels", "dies-at-start");
        Directory.CreateDirectory(spec);
        File.WriteAllText(Path.Combine(spec, "kernel.json"), """
            {"argv": ["/bin/sh", "-c", "echo 'Unhandled exception: System.IO.IOException: Failed to bind to address http://127.0.0.1:2049' >&2; for i in $(seq 80); do echo '   at Frame.Number(Int32 i)' >&2; done; exit 1", "{connection_file}"],
             "display_name": "dies", "language": "C#"}
            """);
        var nb = Tools.WriteNotebook(Path.Combine(temp.Path, "k.ipynb"), "1 + 1");
        var result = PeftWorkbench.Kernel.Notebooks.JupyterClientRunner.Run(nb, Path.Combine(temp.Path, "out"), "smoke", kernelName: "dies-at-start",
            environment: new Dictionary<string, string?> { ["JUPYTER_PATH"] = Path.Combine(temp.Path, "jupyter") });
        Assert.False(result.Ok);
        Assert.Contains("IOException: Failed to bind to address http://127.0.0.1:2049", result.Describe());
    }

    [Fact]
    public void NbClientRunsANotebookThroughTheInstalledKernelspec()
    {
        using var temp = new TempDir();
        var dir = temp.Path;
        var jupyterPath = Path.Combine(dir, "jupyter");
        var install = Tools.Run(Tools.Dotnet, new[] { Tools.Peft, "kernel", "install", "--jupyter-path", jupyterPath });
        Assert.True(install.Code == 0, install.Stderr);
        var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(jupyterPath, "kernels", "peft-workbench", "kernel.json")))!;
        Assert.Equal("message", spec["interrupt_mode"]!.GetValue<string>());
        Assert.Contains("{connection_file}", spec["argv"]!.AsArray().Select(a => a!.GetValue<string>()));

        var input = Tools.WriteNotebook(Path.Combine(dir, "client.ipynb"),
            "Console.WriteLine(\"hello from C#\");",
            "Chart.Line(new[] { 1.0, 4.0, 9.0 })",
            "new DataFrame(new PrimitiveDataFrameColumn<int>(\"n\", new[] { 1, 2, 3 }))",
            "var progress = display(\"step 1\");\nprogress.Update(\"step 2\");",
            "throw new InvalidOperationException(\"expected failure\");");
        var output = Path.Combine(dir, "client.out.ipynb");
        var env = new Dictionary<string, string>
        {
            ["JUPYTER_PATH"] = jupyterPath, ["JUPYTER_DATA_DIR"] = Path.Combine(dir, "data"), ["JUPYTER_RUNTIME_DIR"] = Path.Combine(dir, "runtime"),
            ["JUPYTER_PLATFORM_DIRS"] = "1",
        };
        var run = Tools.Run(Tools.Python, new[] { "-c", NbClientScript, input, output }, env, cwd: dir, timeoutSeconds: 240);
        Assert.True(run.Code == 0, $"nbclient failed ({run.Code}):\n{run.Stderr}\n{run.Stdout}");

        var cells = JsonNode.Parse(File.ReadAllText(output))!["cells"]!.AsArray();
        JsonArray Outputs(int i) => cells[i]!["outputs"]!.AsArray();
        string Text(JsonNode? n) => n is JsonArray a ? string.Concat(a.Select(x => x!.GetValue<string>())) : n!.GetValue<string>();

        var stream = Assert.Single(Outputs(0));
        Assert.Equal("stream", stream!["output_type"]!.GetValue<string>());
        Assert.Equal("hello from C#\n", Text(stream["text"]));

        var chart = Assert.Single(Outputs(1))!;
        Assert.Equal("execute_result", chart["output_type"]!.GetValue<string>());
        Assert.Contains("Plotly.newPlot", Text(chart["data"]!["text/html"]));
        Assert.Contains(PeftWorkbench.Plots.PlotlyJs.Marker, Text(chart["data"]!["text/html"]));
        Assert.NotNull(chart["data"]!["text/plain"]);

        var table = Assert.Single(Outputs(2))!;
        Assert.Contains("<table", Text(table["data"]!["text/html"]));
        Assert.Contains("3 rows × 1 columns", Text(table["data"]!["text/html"]));

        var shown = Assert.Single(Outputs(3))!;
        Assert.Equal("display_data", shown["output_type"]!.GetValue<string>());
        Assert.Equal("step 2", Text(shown["data"]!["text/plain"])); // nbclient applied update_display_data

        var error = Assert.Single(Outputs(4))!;
        Assert.Equal("error", error["output_type"]!.GetValue<string>());
        Assert.Equal("InvalidOperationException", error["ename"]!.GetValue<string>());
        Assert.Equal("expected failure", error["evalue"]!.GetValue<string>());
        Assert.Equal(5, cells[4]!["execution_count"]!.GetValue<int>());
    }
}
