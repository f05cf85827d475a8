namespace PeftWorkbench.Tests;

/// <summary>Notebooks' parameters cells start from Workbench.Profile, so PEFT_PROFILE reaches a notebook however it is
/// opened (a Jupyter front end, `jupyter execute`), not only through `peft notebooks run`'s injection.</summary>
public class WorkbenchProfileTests
{
    [Fact]
    public void ProfileComesFromPeftProfileAndATypoNamesTheValue()
    {
        var before = Environment.GetEnvironmentVariable("PEFT_PROFILE");
        try
        {
            Environment.SetEnvironmentVariable("PEFT_PROFILE", null);
            Assert.Equal("default", Workbench.Profile);
            Environment.SetEnvironmentVariable("PEFT_PROFILE", "smoke");
            Assert.Equal("smoke", Workbench.Profile);
            Environment.SetEnvironmentVariable("PEFT_PROFILE", "smoek");
            var e = Assert.Throws<ArgumentException>(() => Workbench.Profile);
            Assert.Contains("'smoek'", e.Message);
            Assert.Contains("mini-full", e.Message);
        }
        finally { Environment.SetEnvironmentVariable("PEFT_PROFILE", before); }
    }

    [Fact]
    public void EveryNotebookStartsFromWorkbenchProfile()
    {
        var dir = Path.Combine(TestPaths.Repo, "notebooks");
        foreach (var nb in Directory.GetFiles(dir, "*.ipynb"))
        {
            var text = File.ReadAllText(nb);
            Assert.Contains("var Profile = Workbench.Profile;", text);
            Assert.DoesNotContain("var Profile = \\\"", text);
        }
    }
}
