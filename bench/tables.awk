# bench/tables.awk — the tables of one workload of bench/run, from its raw
# results (tab-separated; see bench/lib.sh): servers.x (id label backend
# pair-id failure), runs.tsv, sys.tsv, cg.tsv.
#
# Variables: Ps, tests (space-separated), tcol (yes: a test column), docg,
# dopair (yes: those columns), wl (the workload), sum (the summary file),
# out (a directory).  Prints the rows of the main table; writes those of
# the all-tests table to out/all.md and of the syscall table to out/sys.md.
# Summary rows: workload label backend test P rps p50 p99 cpu/req
# cpu-ratio syscalls/req instr/req pair-ratio rps-ratio.

function med(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    if (n == 0) return "n/a"
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function f(fmt, v) { return (v == "" || v == "n/a") ? "n/a" : sprintf(fmt, v) }
function add(k, v) { if (v != "" && v != "nan") L[k] = L[k] " " v }
function ext(k, hi,   n, a, i, m) {   # min or max of list k
    n = split(L[k], a, " "); m = a[1]
    for (i = 2; i <= n; i++) if (hi ? a[i] + 0 > m + 0 : a[i] + 0 < m + 0) m = a[i]
    return m
}
# pr: median over repetitions of v[i] / v[j] at one point, paired within
# each repetition (the two ran seconds apart)
function pr(P, i, j, t, v,   r, s) {
    s = ""
    for (r in reps) if (((P, i, t, r) in v) && ((P, j, t, r) in v) && v[P, j, t, r] > 0) s = s " " v[P, i, t, r] / v[P, j, t, r]
    return med(s)
}
# apr: the same over all tests of a repetition together: CPU per request
# (total CPU over total requests) or req/s (total requests over total time)
function apr(P, i, j, what,   r, s, a, b) {
    s = ""
    for (r in reps) {
        a = P SUBSEP i SUBSEP r; b = P SUBSEP j SUBSEP r
        if (ak[a] == nt && ak[b] == nt && ac[b] > 0)
            s = s " " (what == "cpu" ? (ac[a] / an[a]) / (ac[b] / an[b]) : (an[a] / at[a]) / (an[b] / at[b]))
    }
    return med(s)
}
BEGIN { FS = "\t" }
FILENAME ~ /servers\.x$/ { ns++; id[ns] = $1; lab[$1] = $2; be[$1] = $3; pair[$1] = $4; why[$1] = $5; next }
FILENAME ~ /sys\.tsv$/ { sys[$1, $2, $3] = $4; sysb[$1, $2, $3] = $5; next }
FILENAME ~ /cg\.tsv$/ { cg[$1, $2, $3] = $4; next }
{   # runs.tsv: P id rep test rps p50 p99 cpu_us/req user_us/req cpu% requests cpu_s
    k = $1 SUBSEP $2 SUBSEP $4
    add("rps" k, $5); add("p50" k, $6); add("p99" k, $7); add("cpu" k, $8); add("usr" k, $9); add("pct" k, $10)
    cpu[k, $3] = $8; rps[k, $3] = $5; reps[$3] = 1
    a = $1 SUBSEP $2 SUBSEP $3
    ac[a] += $12; an[a] += $11; at[a] += $11 / $5; au[a] += $9 * $11; ak[a]++
}
END {
    np = split(Ps, PP, " "); nt = split(tests, TT, " "); ref = id[1]
    for (p = 1; p <= np; p++) for (x = 1; x <= nt; x++) for (s = 1; s <= ns; s++) {
        P = PP[p]; t = TT[x]; i = id[s]; k = P SUBSEP i SUBSEP t
        tc = tcol == "yes" ? " " t " |" : ""
        sy = (k in sys) ? sys[k] : "n/a"
        if (sy != "n/a") printf "| %s |%s %s | %s | %s |\n", lab[i], tc, P, sy, sysb[k] >(out "/sys.md")
        if (L["rps" k] == "") {
            printf "| %s | %s |%s %s | FAILED (%s) | | | | | | | | |%s%s\n", lab[i], be[i], tc, P,
                why[i] == "" ? "no result" : why[i], docg == "yes" ? " |" : "", dopair == "yes" ? " |" : ""
            continue
        }
        rp = med(L["rps" k]); p50 = med(L["p50" k]); p99 = med(L["p99" k]); c = med(L["cpu" k])
        ratio = f("%.2f", pr(P, i, ref, t, cpu)); rr = f("%.2f", pr(P, i, ref, t, rps))
        pq = pair[i] == "-" ? "n/a" : f("%.2f", pr(P, i, pair[i], t, cpu))
        ir = (k in cg) ? cg[k] : "n/a"
        printf "| %s | %s |%s %s | %.0f | %.0f–%.0f | %s | %s | %.3f | %.3f | %.0f | %s | %s |%s%s\n", lab[i], be[i], tc, P,
            rp, ext("rps" k, 0), ext("rps" k, 1), f("%.0f", p50), f("%.0f", p99), c, med(L["usr" k]), med(L["pct" k]),
            ratio, sy, docg == "yes" ? " " ir " |" : "", dopair == "yes" ? " " pq " |" : ""
        printf "%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%.4f\t%s\t%s\t%s\t%s\t%s\n", wl, lab[i], be[i], t, P, rp,
            f("%.0f", p50), f("%.0f", p99), c, ratio, sy, ir, pq, rr >>sum
    }
    if (nt < 2) exit
    for (p = 1; p <= np; p++) for (s = 1; s <= ns; s++) {
        P = PP[p]; i = id[s]; lc = lu = lr = ""; ss = sc = ks = kc = 0
        for (r in reps) {
            a = P SUBSEP i SUBSEP r
            if (ak[a] != nt) continue
            lc = lc " " ac[a] * 1e6 / an[a]; lu = lu " " au[a] / an[a]; lr = lr " " an[a] / at[a]
        }
        for (x = 1; x <= nt; x++) {
            k = P SUBSEP i SUBSEP TT[x]
            if (k in sys) { ss += sys[k]; ks++ }
            if (k in cg) { sc += cg[k]; kc++ }
        }
        sy = ks ? sprintf("%.3f", ss / ks) : "n/a"; ir = kc ? sprintf("%.0f", sc / kc) : "n/a"
        if (lc == "") { printf "| %s | %s | %s | FAILED | | | | |%s\n", lab[i], be[i], P, docg == "yes" ? " |" : "" >(out "/all.md"); continue }
        ratio = f("%.2f", apr(P, i, ref, "cpu")); rr = f("%.2f", apr(P, i, ref, "rps"))
        printf "| %s | %s | %s | %.0f | %.3f | %.3f | %s | %s |%s\n", lab[i], be[i], P, med(lr), med(lc), med(lu),
            ratio, sy, docg == "yes" ? " " ir " |" : "" >(out "/all.md")
        printf "%s\t%s\t%s\tall\t%s\t%.0f\tn/a\tn/a\t%.4f\t%s\t%s\t%s\tn/a\t%s\n", wl, lab[i], be[i], P, med(lr),
            med(lc), ratio, sy, ir, rr >>sum
    }
}
