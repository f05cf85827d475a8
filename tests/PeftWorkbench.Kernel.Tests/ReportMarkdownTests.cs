using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>The HTML report's Markdown is CommonMark (issue 24, item 6): the cases the hand-written renderer broke,
/// against the HTML CommonMark specifies (and Jupyter's renderer draws).</summary>
public class ReportMarkdownTests
{
    static void Renders(string markdown, string html) => Assert.Equal(html, NotebookHtml.Markdown(markdown).Replace("\r\n", "\n"));

    [Fact]
    public void AListItemContinuedOnTheNextLineStaysOneItem() => Renders(
        "- tuned carefully, methods reach\n  similar accuracy\n- second",
        "<ul>\n<li>tuned carefully, methods reach\nsimilar accuracy</li>\n<li>second</li>\n</ul>\n");

    [Fact]
    public void ANumberedListSplitByParagraphsKeepsCounting() => Renders(
        "1. first\n\n   more about the first\n2. second\n3. third",
        "<ol>\n<li><p>first</p>\n<p>more about the first</p>\n</li>\n<li><p>second</p>\n</li>\n<li><p>third</p>\n</li>\n</ol>\n");

    [Fact]
    public void ANumberedListStartsWhereTheSourceSays() => Renders(
        "3. three\n4. four",
        "<ol start=\"3\">\n<li>three</li>\n<li>four</li>\n</ol>\n");

    [Fact]
    public void CodeSpansKeepTheirTextLiterally() => Renders(
        "Call `Study.RunAll(tasks, *methods*)` and ``a ` b``.",
        "<p>Call <code>Study.RunAll(tasks, *methods*)</code> and <code>a ` b</code>.</p>\n");

    [Fact]
    public void PipeTablesBecomeTablesWithTheirAlignment() => Renders(
        "| method | top-1 |\n|:---|---:|\n| LoRA | 74.5 |",
        "<table>\n<thead>\n<tr>\n<th style=\"text-align: left;\">method</th>\n<th style=\"text-align: right;\">top-1</th>\n</tr>\n</thead>\n" +
        "<tbody>\n<tr>\n<td style=\"text-align: left;\">LoRA</td>\n<td style=\"text-align: right;\">74.5</td>\n</tr>\n</tbody>\n</table>\n");

    [Fact]
    public void RawHtmlIsShownAsTextNotRun() => Renders(
        "<script>alert(1)</script>",
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n");

    [Fact]
    public void LongCodeLinesWrapInTheReport()
    {
        // The page's style wraps code cells (pre-wrap) and lets wide outputs scroll, so nothing is cut off at the edge.
        var html = NotebookHtml.Render(new System.Text.Json.Nodes.JsonObject { ["cells"] = new System.Text.Json.Nodes.JsonArray() }, "t");
        Assert.Matches(@"pre\.code \{[^}]*white-space: pre-wrap", html);
        // Printed text (a summary's sentences, an error) wraps as Jupyter's output area wraps it, not a line to scroll.
        Assert.Matches(@"pre\.stream \{[^}]*white-space: pre-wrap", html);
        Assert.Matches(@"pre\.error \{[^}]*white-space: pre-wrap", html);
        Assert.Matches(@"\.output \{[^}]*overflow-x: auto", html);
    }
}
