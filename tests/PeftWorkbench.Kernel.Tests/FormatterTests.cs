using PeftWorkbench.Plots;
using Microsoft.Data.Analysis;
using PeftWorkbench.Kernel.Display;
using PeftWorkbench.Display;
using TorchSharp;
using XPlot.Plotly;

namespace PeftWorkbench.Kernel.Tests;

public class FormatterTests
{
    [Fact]
    public void DataFrameBecomesATableWithItsShape()
    {
        var df = new DataFrame(new PrimitiveDataFrameColumn<int>("epoch", Enumerable.Range(0, 25)), new StringDataFrameColumn("note", Enumerable.Range(0, 25).Select(i => $"<b>{i}</b>")));
        var data = new Formatters().Format(df);
        Assert.StartsWith("<table", data["text/html"]);
        Assert.Contains("<th style=\"text-align: right\">epoch</th>", data["text/html"]);
        Assert.Contains("25 rows × 2 columns (first 20 shown)", data["text/html"]);
        Assert.Contains("&lt;b&gt;3&lt;/b&gt;", data["text/html"]); // values are escaped
        Assert.DoesNotContain(">20</td>", data["text/html"]);
        Assert.EndsWith("[25 rows x 2 columns]", data["text/plain"]);
    }

    /// <summary>Issue 24, item 7: text columns read from the left, numbers from the right, and numbers are rounded for a
    /// reader (the paper column printed 68.9357).</summary>
    [Fact]
    public void TablesAlignTextLeftNumbersRightAndRoundNumbers()
    {
        var df = new DataFrame(new StringDataFrameColumn("where", new[] { "attention qkv" }),
            new PrimitiveDataFrameColumn<double>("paper", new[] { 68.9357 }), new PrimitiveDataFrameColumn<double>("lr", new[] { 0.001 }));
        var data = new Formatters().Format(df);
        Assert.Contains("<td style=\"text-align: left\">attention qkv</td>", data["text/html"]);
        Assert.Contains("<td style=\"text-align: right\">68.94</td>", data["text/html"]);
        Assert.Contains("<td style=\"text-align: right\">0.001</td>", data["text/html"]);
        Assert.Contains("68.94", data["text/plain"]);
        Assert.DoesNotContain("68.9357", data["text/plain"]);
        // A missing number (the study ran no corruptions) reads n/a in both forms.
        var missing = new Formatters().Format(new DataFrame(new PrimitiveDataFrameColumn<double>("paper", new double?[] { null, 1.5 })));
        Assert.Contains("<td style=\"text-align: right\">n/a</td>", missing["text/html"]);
        Assert.Contains("n/a", missing["text/plain"]);
        Assert.DoesNotContain("null", missing["text/html"] + missing["text/plain"]);
    }

    [Fact]
    public void TensorShowsShapeTypeAndValues()
    {
        using var small = torch.arange(6, dtype: torch.float32).reshape(2, 3);
        var text = new Formatters().Format(small)["text/plain"];
        Assert.StartsWith("Tensor [2, 3] Float32 on cpu", text);
        Assert.Contains("5", text);
        using var big = torch.ones(50, 50);
        var preview = PeftWorkbench.Display.NotebookDisplay.TensorText(big);
        Assert.Contains("first 10 of 2500 values", preview);
        Assert.Contains("mean 1", preview);
    }

    [Fact]
    public void ChartsEmbedPlotlyOnceAndTextPlainIsAlwaysThere()
    {
        var f = new Formatters();
        var first = f.Format(Chart.Line(new[] { 1.0, 2.0, 3.0 }));
        var second = f.Format(Chart.Line(new[] { 3.0, 2.0, 1.0 }));
        Assert.Contains(PlotlyJs.Marker, first["text/html"]);
        Assert.DoesNotContain(PlotlyJs.Marker, second["text/html"]);
        Assert.Contains("Plotly.newPlot", second["text/html"]);
        Assert.NotNull(PlotlyJs.Locate()); // environment/setup.d/kernel.sh installed it: charts render offline
        foreach (var v in new object?[] { null, 3, "s", new { A = 1 }, new List<int> { 1, 2 }, f })
            Assert.False(string.IsNullOrEmpty(f.Format(v)["text/plain"]));
        Assert.Contains("<table", f.Format(new { Alpha = 1, Beta = "b" })["text/html"]);
    }

    [Fact]
    public void ImagesBecomePng()
    {
        using var t = torch.linspace(0, 1, 12).reshape(1, 3, 4);
        var img = KernelImage.FromTensor(t, scale: 2);
        Assert.Equal((8, 6), (img.Width, img.Height));
        var data = new Formatters().Format(img);
        var png = Convert.FromBase64String(data["image/png"]);
        Assert.Equal(new byte[] { 137, 80, 78, 71 }, png[..4]);
        Assert.Equal("PNG image 8x6", data["text/plain"]);
        Assert.Throws<ArgumentException>(() => KernelImage.FromTensor(torch.ones(2, 2, 2, 2)));
    }
}
