using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Scripting;

namespace PeftWorkbench.Kernel.Execution;

public sealed record Completion(IReadOnlyList<string> Matches, int CursorStart, int CursorEnd);
public sealed record Inspection(string Signature, string? Documentation);

/// <summary>complete_request, inspect_request and is_complete_request, answered by Roslyn's semantic model of the cell
/// as a continuation of the session's state (so earlier variables are known).</summary>
public sealed partial class ScriptEngine
{
    static readonly CSharpParseOptions scriptParse = new(LanguageVersion.Latest, kind: SourceCodeKind.Script);

    /// <summary>"complete", "incomplete" (an open brace or statement: the console waits for more) or "invalid".</summary>
    public string IsComplete(string code)
    {
        string body;
        try { body = Directives.Parse(code, Packages).Code; }
        catch (DirectiveException) { return "invalid"; }
        if (body.Trim().Length == 0) return "complete";
        var tree = CSharpSyntaxTree.ParseText(body, scriptParse);
        return SyntaxFactory.IsCompleteSubmission(tree) ? "complete" : "incomplete";
    }

    (SemanticModel Model, SyntaxTree Tree)? Analyse(string code)
    {
        string body;
        try { body = Directives.Parse(code, Packages).Code; }
        catch (DirectiveException) { return null; }
        // Directive lines become spaces of equal length, so cursor positions line up with the text Roslyn sees.
        var script = state is null ? CSharpScript.Create<object>(body, options, typeof(KernelGlobals)) : state.Script.ContinueWith<object>(body, options);
        var compilation = script.GetCompilation();
        var tree = compilation.SyntaxTrees.Last();
        return (compilation.GetSemanticModel(tree), tree);
    }

    public Completion Complete(string code, int cursor)
    {
        cursor = Math.Clamp(cursor, 0, code.Length);
        int start = cursor;
        while (start > 0 && (char.IsLetterOrDigit(code[start - 1]) || code[start - 1] == '_')) start--;
        var prefix = code[start..cursor];
        var analysed = Analyse(code);
        if (analysed is not { } a) return new Completion(Array.Empty<string>(), start, cursor);
        var (model, tree) = a;

        IEnumerable<ISymbol> symbols;
        int dot = start - 1;
        while (dot >= 0 && char.IsWhiteSpace(code[dot])) dot--;
        if (dot >= 0 && code[dot] == '.')
        {
            var token = tree.GetRoot().FindToken(dot);
            var left = token.Parent switch
            {
                MemberAccessExpressionSyntax ma => ma.Expression,
                QualifiedNameSyntax qn => qn.Left,
                _ => null,
            };
            if (left is null) return new Completion(Array.Empty<string>(), start, cursor);
            var symbol = model.GetSymbolInfo(left).Symbol;
            if (symbol is INamespaceSymbol ns) symbols = model.LookupNamespacesAndTypes(dot + 1, ns);
            else if (symbol is INamedTypeSymbol typeSymbol) symbols = model.LookupStaticMembers(dot + 1, typeSymbol);
            else
            {
                var type = model.GetTypeInfo(left).Type;
                symbols = type is null ? Array.Empty<ISymbol>() : model.LookupSymbols(dot + 1, type, includeReducedExtensionMethods: true);
            }
        }
        else symbols = model.LookupSymbols(start);

        var matches = symbols.Where(s => s.CanBeReferencedByName && s.Name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Select(s => s.Name).Distinct()
            .OrderBy(n => !n.StartsWith(prefix, StringComparison.Ordinal)).ThenBy(n => n, StringComparer.OrdinalIgnoreCase)
            .ToList();
        return new Completion(matches, start, cursor);
    }

    public Inspection? Inspect(string code, int cursor)
    {
        cursor = Math.Clamp(cursor, 0, code.Length);
        if (Analyse(code) is not { } a) return null;
        var (model, tree) = a;
        // The identifier under the cursor, or the one just before it (cursor after "Foo" or after "Foo(").
        int at = cursor;
        while (at > 0 && (at >= code.Length || !(char.IsLetterOrDigit(code[at]) || code[at] == '_'))) at--;
        var token = tree.GetRoot().FindToken(at);
        for (var node = token.Parent; node is not null; node = node.Parent)
        {
            var symbol = model.GetSymbolInfo(node).Symbol ?? model.GetSymbolInfo(node).CandidateSymbols.FirstOrDefault()
                ?? model.GetDeclaredSymbol(node) ?? (ISymbol?)model.GetTypeInfo(node).Type;
            if (symbol is null || symbol is IErrorTypeSymbol) continue;
            var signature = symbol.ToDisplayString(SymbolDisplayFormat.CSharpErrorMessageFormat);
            if (symbol is ILocalSymbol or IFieldSymbol or IPropertySymbol)
                signature = $"{symbol.Kind.ToString().ToLowerInvariant()} {signature}: {TypeOf(symbol)}";
            var xml = symbol.GetDocumentationCommentXml();
            return new Inspection(signature, string.IsNullOrWhiteSpace(xml) ? null : xml.Trim());
        }
        return null;
    }

    static string TypeOf(ISymbol s) => s switch
    {
        ILocalSymbol l => l.Type.ToDisplayString(),
        IFieldSymbol f => f.Type.ToDisplayString(),
        IPropertySymbol p => p.Type.ToDisplayString(),
        _ => "",
    };
}
