using System.Text;

namespace PeftWorkbench;

/// <summary>Values written into shell scripts and into commands the workbench prints for the user to paste.</summary>
public static class Shell
{
    /// <summary>
    /// <paramref name="s"/> as one bash word on one line: as it is when plain, else in single quotes (nothing inside
    /// expands), or as $'...' when it holds a control character such as a line break, which is then written as an
    /// escape. So a value can neither run a command nor start a new line of the script (or end a comment).
    /// </summary>
    public static string Quote(string s)
    {
        if (s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+=:,@%".Contains(c))) return s;
        if (!s.Any(char.IsControl)) return "'" + s.Replace("'", "'\\''") + "'";
        var sb = new StringBuilder("$'");
        foreach (var c in s)
            sb.Append(c switch
            {
                '\\' => "\\\\", '\'' => "\\'", '\n' => "\\n", '\r' => "\\r", '\t' => "\\t",
                _ when char.IsControl(c) => string.Concat(Encoding.UTF8.GetBytes(c.ToString()).Select(b => $"\\x{b:x2}")),
                _ => c.ToString(),
            });
        return sb.Append('\'').ToString();
    }
}
