using PeftWorkbench.Analysis;
using PeftWorkbench.Display;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Plots;
using XPlot.Plotly;

namespace PeftWorkbench.Tests.Analysis;

/// <summary>
/// Issue 26 item 6: names from a results store (methods, tasks, groups) reach the charts `peft analyze` saves and the
/// ones notebooks show, inside a &lt;script&gt; element. Whatever a name holds, the page must keep exactly the script
/// elements (and no comment openings) it has with a plain name, and still carry the name as data.
/// </summary>
public class HtmlInjectionFuzzTests
{
    static readonly string[] Hostile =
    {
        "</script><script>document.title='pwned'</script>",
        "</SCRIPT ><script>alert(1)</script>",
        "</script\t><img src=x onerror=alert(1)>",
        "<!--<script>",
        "<script>alert(1)</script>",
        "x</scr</script>ipt>",
        "<\u2028/script>",
        "]]></style></title></textarea><svg onload=alert(1)>",
    };

    /// <summary>Every chart kind that shows store names, with <paramref name="name"/> as a method, a task and a group.</summary>
    static IEnumerable<(string Kind, PlotlyChart Chart)> Charts(string name)
    {
        var methods = new[] { name, "lora", "ssf" };
        var scores = new List<Score>();
        foreach (var task in new[] { name, "cifar" })
            foreach (var (m, i) in methods.Append("linear").Append("full").Select((m, i) => (m, i)))
                scores.Add(new Score(task, name, m, 50 + i));
        yield return ("heatmap", Plots.Charts.Heatmap(new MethodMatrix(name, methods, new double[,] { { 1, 0.5, 0.2 }, { 0.5, 1, 0.3 }, { 0.2, 0.3, 1 } }), cluster: false));
        yield return ("venn", Plots.Charts.Venn3(new VennCounts(name, methods, new Dictionary<int, int> { [1] = 3, [7] = 5 }, 10)));
        yield return ("upset", Plots.Charts.UpSet(new VennCounts(name, methods, new Dictionary<int, int> { [1] = 3, [7] = 5 }, 10)));
        yield return ("mean rank", Plots.Charts.MeanRank(scores));
        yield return ("gain over linear", Plots.Charts.GainOverLinear(scores));
        yield return ("beside", Plots.Charts.Beside(methods, new[] { 1.0, 2, 3 }, new[] { 1.0, 2, 3 }, name, name, name));
    }

    static int Count(string html, string what) =>
        Enumerable.Range(0, Math.Max(0, html.Length - what.Length + 1)).Count(i => string.Compare(html, i, what, 0, what.Length, StringComparison.OrdinalIgnoreCase) == 0);

    [Fact]
    public void StoreNamesInChartsNeverEndTheirScript()
    {
        var outcomes = new Outcomes();
        var failures = new List<string>();
        var plain = Charts("m").ToDictionary(c => c.Kind, c => c.Chart);
        foreach (var name in Hostile)
            foreach (var (kind, chart) in Charts(name))
                foreach (var (where, render) in new (string, Func<PlotlyChart, string>)[]
                         {
                             ("analyze page", c => Plots.Charts.StandaloneHtml(c, "t")),
                             ("notebook output", c => new NotebookDisplay().Format(c, "text/html")),
                         })
                {
                    string html, baseline;
                    try { (html, baseline) = (render(chart), render(plain[kind])); }
                    catch (Exception e) { outcomes.Crash++; failures.Add($"{kind} {where}: {e.GetType().Name}: {e.Message}"); continue; }
                    var broken = new[] { "<script", "</script", "<!--" }.FirstOrDefault(t => Count(html, t) != Count(baseline, t));
                    if (broken is not null) { outcomes.Injection++; failures.Add($"{kind} {where} {name}: '{broken}' {Count(html, broken)} times, {Count(baseline, broken)} with a plain name"); continue; }
                    // The name is still there, as data that reads back to it ('<' escaped inside the script).
                    if (!Strings(html).Any(x => x.Contains(name)))
                    { outcomes.SilentWrong++; failures.Add($"{kind} {where} {name}: the name is gone"); continue; }
                    outcomes.Clean++;
                }
        FuzzTable.Record("html", "store names with </script>, <!--, <script> in every chart", outcomes, "26.6");
        Assert.True(failures.Count == 0, outcomes + "\n" + string.Join("\n", failures.Take(20)));
    }

    /// <summary>Every string in the data and layout the page's chart script hands plotly, as JSON reads them back.</summary>
    static HashSet<string> Strings(string html)
    {
        var m = System.Text.RegularExpressions.Regex.Match(html, @"var data = (.*?);\s*var layout = (.*?);\s*Plotly", System.Text.RegularExpressions.RegexOptions.Singleline);
        Assert.True(m.Success, "no chart script");
        return new[] { m.Groups[1].Value, m.Groups[2].Value }.SelectMany(j => Newtonsoft.Json.Linq.JToken.Parse(j).SelectTokens("..*"))
            .Where(t => t.Type == Newtonsoft.Json.Linq.JTokenType.String).Select(t => (string)t!).ToHashSet();
    }

    [Fact]
    public void AnEscapedChartReadsBackTheSameData()
    {
        var name = Hostile[0];
        var html = Plots.Charts.InlineHtml(Plots.Charts.Beside(new[] { name }, new[] { 1.0 }, new[] { 2.0 }, name, "x", "y"));
        Assert.DoesNotContain("</script><script>", html);
        Assert.Contains(name, Strings(html));
    }
}
