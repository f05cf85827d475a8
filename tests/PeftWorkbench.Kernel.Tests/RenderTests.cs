using System.Text.RegularExpressions;
using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>The runner's HTML draws its chart in Debian's headless Chromium with the network off.</summary>
public class RenderTests
{
    [Fact]
    public void ChartRendersOfflineInHeadlessChromium()
    {
        using var temp = new TempDir();
        var dir = temp.Path;
        var nb = Tools.WriteNotebook(Path.Combine(dir, "chart.ipynb"),
            "var chart = Chart.Line(new[] { 1.0, 4.0, 9.0, 16.0 });\nchart.WithTitle(\"squares\");\nchart",
            "Chart.Column(new[] { 3.0, 1.0, 2.0 })");
        var result = NotebookRunner.Run(nb, Path.Combine(dir, "out"), "smoke");
        Assert.True(result.Ok, result.Describe());
        var html = File.ReadAllText(result.HtmlPath!);
        Assert.DoesNotContain("src=\"https://cdn.plot.ly", html); // no network needed
        Assert.Equal(1, html.Split(PeftWorkbench.Plots.PlotlyJs.Marker).Length - 1); // plotly.js embedded exactly once

        var dom = Tools.RenderOffline(result.HtmlPath!);
        // Plotly drew both charts: a plot container with its SVG layers each, and the title as SVG text.
        Assert.Equal(2, Regex.Count(dom, "class=\"plot-container plotly\""));
        Assert.True(Regex.Count(dom, "<svg class=\"main-svg\"") >= 2);
        Assert.Matches("<text class=\"gtitle\"[^>]*>squares<", dom);
    }
}
