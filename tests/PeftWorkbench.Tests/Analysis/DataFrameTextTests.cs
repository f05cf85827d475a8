using Microsoft.Data.Analysis;
using PeftWorkbench.Display;

namespace PeftWorkbench.Tests.Analysis;

public class DataFrameTextTests
{
    static DataFrame Rows(int n) => new(new PrimitiveDataFrameColumn<int>("row", Enumerable.Range(1, n)));

    /// <summary>A notebook shows the first rows of a long table; `peft results --reference` prints every pair (48 under default),
    /// where a gap in row 21 used to be cut off.</summary>
    [Fact]
    public void A_notebook_shows_the_first_rows_and_a_command_line_all_of_them()
    {
        var notebook = NotebookDisplay.DataFrameText(Rows(30)).Split('\n');
        Assert.Equal(NotebookDisplay.TableRows + 2, notebook.Length); // header, rows, the size line
        Assert.Equal("[30 rows x 1 columns]", notebook[^1]);
        var all = NotebookDisplay.DataFrameText(Rows(30), maxRows: long.MaxValue).Split('\n');
        Assert.Equal(32, all.Length);
        Assert.Equal("30", all[^2].Trim());
    }
}
