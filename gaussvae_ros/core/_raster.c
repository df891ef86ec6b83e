/*
 * CPU rasterizer for 2D Gaussians with a hand-written backward pass.
 *
 * Everything here is in pixel space: the Python wrapper (gaussvae_ros/core/render.py) turns the
 * normalized Gaussians into pixel-space means and conics and owns autograd.
 *
 *   means  [N, 2]  (x, y) in pixels, image top-left at (0, 0), pixel (i, j) centred at (i+.5, j+.5)
 *   conics [N, 3]  (a, b, c): inverse covariance, weight w = exp(-q / 2),
 *                  q = a dx^2 + 2 b dx dy + c dy^2
 *   colors [N, C]
 *   image  [H, W, C] row-major, wsum [H, W]
 *
 * Each Gaussian only touches the pixels inside its ellipse q <= cutoff (rows clipped to the image,
 * each row's x-range solved exactly), so the cost is the sum of the ellipses' areas, not H*W*N.
 * With rmin > 0 a thin Gaussian's ellipse is enlarged until it holds a disk of rmin pixels, so that
 * the normalized blend has no uncovered holes between thin Gaussians (see gs_row_range).
 *
 * Blend modes:
 *   0 normalized: image = sum_i w_i c_i / sum_i w_i  (0 where no Gaussian reaches)
 *   1 sum:        image = sum_i w_i c_i
 *
 * The forward pass splits the rows into bands, one per thread (no write conflicts); the backward
 * pass splits the Gaussians across threads (each writes only its own gradients).
 *
 * Built as a CPython extension module only so that setuptools/colcon compile it with the package;
 * it is called through ctypes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define GS_MAX_CHANNELS 3

/*
 * exp(x) for x in [-87, 0] (weights only ever need that range): 2^(x log2 e) split into an integer
 * power of two (built in the exponent bits) and 2^f, f in [-0.5, 0.5], by Cephes' exp2f polynomial
 * (relative error ~2e-7). Inline and branch-free, so the row loops vectorize without libm calls.
 */
static inline float gs_exp(float x)
{
    union { float f; int i; } scale;
    x = x < -87.f ? -87.f : x;
    float t = x * 1.44269504088896341f;
#if defined(__x86_64__) && !defined(__SSE4_1__)
    /* Baseline x86-64 (the portable build) has no vector floor: floorf would be a libm call and
     * keep the row loops scalar. t <= 0 here, so truncation toward zero of t - 0.5 is the nearest
     * integer (ties aside), and the conversion vectorizes on SSE2 (BENCHMARKS.md, "Portable and
     * native rasterizer"). */
    float n = (float)(int)(t - 0.5f);
#else
    float n = floorf(t + 0.5f);
#endif
    float f = t - n;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    scale.i = ((int)n + 127) << 23;
    return p * scale.f;
}

typedef struct {
    int y0, y1;      /* inclusive row range, clipped to the image; y0 > y1 means empty */
    float mx, my, a, b, c;
    float cutoff;    /* this Gaussian's support: q <= cutoff */
} gs_extent;

/* Largest q a support may reach: exp(-GS_MAX_CUTOFF / 2) stays a normal float. */
#define GS_MAX_CUTOFF 170.f

/*
 * Support of one Gaussian: q <= max(cutoff, rmin^2 * lambda_max(conic)), i.e. the ellipse at
 * `cutoff` enlarged, for thin Gaussians, until it contains the disk of radius rmin pixels (capped
 * at GS_MAX_CUTOFF). Row range clipped to [0, h). Returns 0 if empty or degenerate.
 */
static int gs_row_range(const float *mean, const float *conic, float cutoff, float rmin, int h, gs_extent *e)
{
    float a = conic[0], b = conic[1], c = conic[2];
    float det = a * c - b * b;
    e->y0 = 1;
    e->y1 = 0;
    if (!(a > 0.f) || !(c > 0.f) || !(det > 0.f)) return 0;
    if (rmin > 0.f) {
        float half = 0.5f * (a - c);
        float lmax = 0.5f * (a + c) + sqrtf(half * half + b * b);
        float need = rmin * rmin * lmax;
        if (need > cutoff) cutoff = need < GS_MAX_CUTOFF ? need : GS_MAX_CUTOFF;
    }
    e->cutoff = cutoff;
    float ry = sqrtf(cutoff * a / det);             /* sqrt(cutoff * Sigma_yy) */
    float my = mean[1];
    if (!(ry == ry) || !(my == my)) return 0;
    int y0 = (int)ceilf(my - ry - 0.5f);
    int y1 = (int)floorf(my + ry - 0.5f);
    if (y0 < 0) y0 = 0;
    if (y1 > h - 1) y1 = h - 1;
    if (y0 > y1) return 0;
    e->y0 = y0; e->y1 = y1;
    e->mx = mean[0]; e->my = my; e->a = a; e->b = b; e->c = c;
    return 1;
}

/* Column range of row y inside the ellipse, clipped to [0, w). Returns 0 if empty. */
static inline int gs_col_range(const gs_extent *e, int y, int w, int *x0, int *x1, float *dy_out)
{
    float dy = (float)y + 0.5f - e->my;
    float disc = e->b * e->b * dy * dy - e->a * (e->c * dy * dy - e->cutoff);
    if (disc < 0.f) return 0;
    float s = sqrtf(disc);
    float lo = (-e->b * dy - s) / e->a, hi = (-e->b * dy + s) / e->a;
    int xa = (int)ceilf(e->mx + lo - 0.5f);
    int xb = (int)floorf(e->mx + hi - 0.5f);
    if (xa < 0) xa = 0;
    if (xb > w - 1) xb = w - 1;
    if (xa > xb) return 0;
    *x0 = xa; *x1 = xb; *dy_out = dy;
    return 1;
}

/* Scatter Gaussians [0, n) into planar accumulators for rows [row0, row1). */
static void gs_scatter_band(int n, int ch, int w, const gs_extent *ext, const float *colors,
                            int row0, int row1, float *const *acc, float *wsum)
{
    for (int i = 0; i < n; i++) {
        const gs_extent *e = &ext[i];
        int ya = e->y0 > row0 ? e->y0 : row0;
        int yb = e->y1 < row1 - 1 ? e->y1 : row1 - 1;
        const float *col = colors + (size_t)i * ch;
        for (int y = ya; y <= yb; y++) {
            int x0, x1;
            float dy;
            if (!gs_col_range(e, y, w, &x0, &x1, &dy)) continue;
            /* q(dx) = a dx^2 + 2 b dy dx + c dy^2, with dx = x + 0.5 - mx */
            const float ha = -0.5f * e->a, hb = -e->b * dy, hc = -0.5f * e->c * dy * dy;
            const float dx0 = (float)x0 + 0.5f - e->mx;
            float *ws = wsum + (size_t)y * w;
            if (ch == 3) {
                float *r = acc[0] + (size_t)y * w, *g = acc[1] + (size_t)y * w, *bl = acc[2] + (size_t)y * w;
                const float c0 = col[0], c1 = col[1], c2 = col[2];
#pragma omp simd
                for (int x = x0; x <= x1; x++) {
                    float dx = dx0 + (float)(x - x0);
                    float wt = gs_exp((ha * dx + hb) * dx + hc);
                    ws[x] += wt;
                    r[x] += wt * c0;
                    g[x] += wt * c1;
                    bl[x] += wt * c2;
                }
            } else {
                float *r = acc[0] + (size_t)y * w;
                const float c0 = col[0];
#pragma omp simd
                for (int x = x0; x <= x1; x++) {
                    float dx = dx0 + (float)(x - x0);
                    float wt = gs_exp((ha * dx + hb) * dx + hc);
                    ws[x] += wt;
                    r[x] += wt * c0;
                }
            }
        }
    }
}

static int gs_threads(int requested)
{
#ifdef _OPENMP
    return requested > 0 ? requested : omp_get_max_threads();
#else
    (void)requested;
    return 1;
#endif
}

/*
 * Forward pass. Writes image [H, W, C] and wsum [H, W]. Returns 0 on success, -1 on bad arguments,
 * -2 on allocation failure.
 */
int gs_forward(int n, int ch, int h, int w, const float *means, const float *conics, const float *colors,
               float cutoff, float rmin, int mode, int nthreads, float *image, float *wsum)
{
    if (n < 0 || h <= 0 || w <= 0 || ch < 1 || ch > GS_MAX_CHANNELS || cutoff <= 0.f) return -1;
    size_t npix = (size_t)h * w;
    gs_extent *ext = (gs_extent *)malloc(sizeof(gs_extent) * (size_t)(n > 0 ? n : 1));
    float *planes = (float *)calloc(npix * (size_t)ch, sizeof(float));
    if (!ext || !planes) { free(ext); free(planes); return -2; }
    float *acc[GS_MAX_CHANNELS];
    for (int k = 0; k < ch; k++) acc[k] = planes + (size_t)k * npix;
    memset(wsum, 0, npix * sizeof(float));
    for (int i = 0; i < n; i++) gs_row_range(means + 2 * (size_t)i, conics + 3 * (size_t)i, cutoff, rmin, h, &ext[i]);

    int nt = gs_threads(nthreads);
    if (nt > h) nt = h;
#pragma omp parallel for num_threads(nt) schedule(static, 1) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        int row0 = (int)((long)h * t / nt), row1 = (int)((long)h * (t + 1) / nt);
        gs_scatter_band(n, ch, w, ext, colors, row0, row1, acc, wsum);
    }

    for (size_t p = 0; p < npix; p++) {
        float scale = mode != 0 ? 1.f : (wsum[p] > 0.f ? 1.f / wsum[p] : 0.f);
        for (int k = 0; k < ch; k++) image[p * ch + k] = acc[k][p] * scale;
    }
    free(ext);
    free(planes);
    return 0;
}

/*
 * Backward pass for image = forward(...), given grad_image = dL/dimage [H, W, C], the forward's image
 * and wsum. Writes (overwrites) grad_means [N, 2], grad_conics [N, 3] (d/da, d/db, d/dc of the
 * conic entries as named above), grad_colors [N, C]. Boundary motion of the truncated support is not
 * differentiated (as in every splatting rasterizer).
 */
int gs_backward(int n, int ch, int h, int w, const float *means, const float *conics, const float *colors,
                float cutoff, float rmin, int mode, int nthreads, const float *grad_image, const float *image,
                const float *wsum, float *grad_means, float *grad_conics, float *grad_colors)
{
    if (n < 0 || h <= 0 || w <= 0 || ch < 1 || ch > GS_MAX_CHANNELS || cutoff <= 0.f) return -1;
    size_t npix = (size_t)h * w;
    /* Per pixel: G_k = dL/dimage_k * s and Gdot = sum_k G_k image_k, with s = 1/(wsum+eps) when
     * normalized, so that dL/dw_i = sum_k G_k c_ik - Gdot. */
    float *gp = (float *)malloc(npix * (size_t)(ch + 1) * sizeof(float));
    if (!gp) return -2;
    float *gplane[GS_MAX_CHANNELS];
    for (int k = 0; k < ch; k++) gplane[k] = gp + (size_t)k * npix;
    float *gdot = gp + (size_t)ch * npix;
    for (size_t p = 0; p < npix; p++) {
        float s = mode != 0 ? 1.f : (wsum[p] > 0.f ? 1.f / wsum[p] : 0.f);
        float d = 0.f;
        for (int k = 0; k < ch; k++) {
            float gk = grad_image[p * ch + k] * s;
            gplane[k][p] = gk;
            d += gk * image[p * ch + k];
        }
        gdot[p] = mode == 0 ? d : 0.f;
    }

    int nt = gs_threads(nthreads);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8) if (nt > 1)
    for (int i = 0; i < n; i++) {
        gs_extent e;
        float gm0 = 0.f, gm1 = 0.f, ga = 0.f, gb = 0.f, gc = 0.f;
        float gcol[GS_MAX_CHANNELS] = {0.f, 0.f, 0.f};
        const float *col = colors + (size_t)i * ch;
        if (gs_row_range(means + 2 * (size_t)i, conics + 3 * (size_t)i, cutoff, rmin, h, &e)) {
            const float c0 = col[0], c1 = ch == 3 ? col[1] : 0.f, c2 = ch == 3 ? col[2] : 0.f;
            for (int y = e.y0; y <= e.y1; y++) {
                int x0, x1;
                float dy;
                if (!gs_col_range(&e, y, w, &x0, &x1, &dy)) continue;
                const float ha = -0.5f * e.a, hb = -e.b * dy, hc = -0.5f * e.c * dy * dy;
                const float dx0 = (float)x0 + 0.5f - e.mx;
                const size_t row = (size_t)y * w;
                const float *g0 = gplane[0] + row, *gd = gdot + row;
                const float *g1 = ch == 3 ? gplane[1] + row : g0, *g2 = ch == 3 ? gplane[2] + row : g0;
                /* Sums over the row: S_w* for colours, and the moments of dL/dq in dx. */
                float sc0 = 0.f, sc1 = 0.f, sc2 = 0.f, q0 = 0.f, q1 = 0.f, q2 = 0.f;
#pragma omp simd reduction(+ : sc0, sc1, sc2, q0, q1, q2)
                for (int x = x0; x <= x1; x++) {
                    float dx = dx0 + (float)(x - x0);
                    float wt = gs_exp((ha * dx + hb) * dx + hc);
                    float dldw = g0[x] * c0 + g1[x] * c1 + g2[x] * c2 - gd[x];
                    float dldq = -0.5f * wt * dldw;
                    sc0 += g0[x] * wt;
                    sc1 += g1[x] * wt;
                    sc2 += g2[x] * wt;
                    q0 += dldq;
                    q1 += dldq * dx;
                    q2 += dldq * dx * dx;
                }
                /* q = a dx^2 + 2 b dx dy + c dy^2; dx = px - mx, dy = py - my */
                ga += q2;
                gb += 2.f * dy * q1;
                gc += dy * dy * q0;
                gm0 += -(2.f * e.a * q1 + 2.f * e.b * dy * q0);
                gm1 += -(2.f * e.b * q1 + 2.f * e.c * dy * q0);
                gcol[0] += sc0;
                gcol[1] += sc1;
                gcol[2] += sc2;
            }
        }
        grad_means[2 * (size_t)i] = gm0;
        grad_means[2 * (size_t)i + 1] = gm1;
        grad_conics[3 * (size_t)i] = ga;
        grad_conics[3 * (size_t)i + 1] = gb;
        grad_conics[3 * (size_t)i + 2] = gc;
        for (int k = 0; k < ch; k++) grad_colors[(size_t)i * ch + k] = gcol[k];
    }
    free(gp);
    return 0;
}

/* Number of (Gaussian, pixel) pairs evaluated by a forward pass: the work measure for benchmarks. */
long long gs_count_pairs(int n, int h, int w, const float *means, const float *conics, float cutoff, float rmin)
{
    long long total = 0;
    for (int i = 0; i < n; i++) {
        gs_extent e;
        if (!gs_row_range(means + 2 * (size_t)i, conics + 3 * (size_t)i, cutoff, rmin, h, &e)) continue;
        for (int y = e.y0; y <= e.y1; y++) {
            int x0, x1;
            float dy;
            if (gs_col_range(&e, y, w, &x0, &x1, &dy)) total += x1 - x0 + 1;
        }
    }
    return total;
}

/*
 * Projection of normalized Gaussians to pixel space (see gaussvae_ros/core/render.py `project`):
 *   xy [N, 2] normalized means, scale [N, 2] normalized standard deviations, rot [N] radians
 *   -> means [N, 2] pixels, conics [N, 3] = inverse of D R diag(scale^2) R^T D + lowpass I,
 *   D = diag(w, h).
 */
void gs_project(int n, int h, int w, float lowpass, const float *xy, const float *scale, const float *rot,
                float *means, float *conics)
{
    const float fw = (float)w, fh = (float)h;
    for (int i = 0; i < n; i++) {
        float c = cosf(rot[i]), s = sinf(rot[i]);
        float v1 = scale[2 * i] * scale[2 * i], v2 = scale[2 * i + 1] * scale[2 * i + 1];
        float pxx = (v1 * c * c + v2 * s * s) * fw * fw + lowpass;
        float pxy = (v1 - v2) * c * s * fw * fh;
        float pyy = (v1 * s * s + v2 * c * c) * fh * fh + lowpass;
        float det = pxx * pyy - pxy * pxy;
        conics[3 * i] = pyy / det;
        conics[3 * i + 1] = -pxy / det;
        conics[3 * i + 2] = pxx / det;
        means[2 * i] = xy[2 * i] * fw;
        means[2 * i + 1] = xy[2 * i + 1] * fh;
    }
}

/* Backward of gs_project: gradients w.r.t. xy, scale and rot from those w.r.t. means and conics. */
void gs_project_backward(int n, int h, int w, float lowpass, const float *scale, const float *rot,
                         const float *conics, const float *grad_means, const float *grad_conics, float *grad_xy,
                         float *grad_scale, float *grad_rot)
{
    const float fw = (float)w, fh = (float)h;
    for (int i = 0; i < n; i++) {
        float a = conics[3 * i], b = conics[3 * i + 1], cc = conics[3 * i + 2];
        /* K = [[a, b], [b, cc]] = P^-1; dL/dP = -K G K with G the symmetric gradient of K (b counted
         * once per off-diagonal entry). */
        float ga = grad_conics[3 * i], gb = 0.5f * grad_conics[3 * i + 1], gc = grad_conics[3 * i + 2];
        /* M = G K */
        float m00 = ga * a + gb * b, m01 = ga * b + gb * cc, m10 = gb * a + gc * b, m11 = gb * b + gc * cc;
        float gp00 = -(a * m00 + b * m10), gp01 = -(a * m01 + b * m11), gp11 = -(b * m01 + cc * m11);
        float g_sxx = gp00 * fw * fw, g_syy = gp11 * fh * fh, g_sxy = 2.f * gp01 * fw * fh;
        float c = cosf(rot[i]), s = sinf(rot[i]);
        float s1 = scale[2 * i], s2 = scale[2 * i + 1];
        float v1 = s1 * s1, v2 = s2 * s2;
        float g_v1 = g_sxx * c * c + g_sxy * c * s + g_syy * s * s;
        float g_v2 = g_sxx * s * s - g_sxy * c * s + g_syy * c * c;
        grad_scale[2 * i] = 2.f * s1 * g_v1;
        grad_scale[2 * i + 1] = 2.f * s2 * g_v2;
        grad_rot[i] = (v1 - v2) * (2.f * c * s * (g_syy - g_sxx) + g_sxy * (c * c - s * s));
        grad_xy[2 * i] = grad_means[2 * i] * fw;
        grad_xy[2 * i + 1] = grad_means[2 * i + 1] * fh;
    }
    (void)lowpass;
}

/*
 * Image loss for fitting: L = (1 - lam) * mean|x - y| + lam * (1 - mean SSIM(x, y)), images [H, W, C]
 * (interleaved), SSIM with an 11-tap Gaussian window (sigma 1.5) applied separably with clamped
 * (replicated) borders, constants C1 = 0.01^2, C2 = 0.03^2 (data range 1). Writes dL/dx to grad
 * (may be NULL) and returns L. The SSIM gradient is the closed form
 *   dS/dx(q) = G * dS/dmu_x + 2 x(q) G * dS/de_xx + y(q) G * dS/de_xy   (G symmetric),
 * with e_xx = G * x^2, e_xy = G * (x y). Returns NaN on allocation failure.
 */
#define GS_SSIM_TAPS 11

/* Horizontal pass of one row: out[x] = sum_k g[k] in[clamp(x + k - r)], through a padded copy. */
static void gs_blur_row(const float *in, float *pad, float *out, int w, const float *g)
{
    const int r = GS_SSIM_TAPS / 2;
    for (int k = 0; k < r; k++) { pad[k] = in[0]; pad[w + r + k] = in[w - 1]; }
    memcpy(pad + r, in, sizeof(float) * (size_t)w);
    for (int x = 0; x < w; x++) out[x] = 0.f;
    for (int k = 0; k < GS_SSIM_TAPS; k++) {
        const float gk = g[k];
        const float *src = pad + k;
#pragma omp simd
        for (int x = 0; x < w; x++) out[x] += gk * src[x];
    }
}

/* Adjoint of gs_blur_row: scatter into the padded row, then fold the padding onto the edge pixels. */
static void gs_blur_row_adjoint(const float *in, float *pad, float *out, int w, const float *g)
{
    const int r = GS_SSIM_TAPS / 2;
    for (int j = 0; j < w + 2 * r; j++) pad[j] = 0.f;
    for (int k = 0; k < GS_SSIM_TAPS; k++) {
        const float gk = g[k];
        float *dst = pad + k;
#pragma omp simd
        for (int x = 0; x < w; x++) dst[x] += gk * in[x];
    }
    memcpy(out, pad + r, sizeof(float) * (size_t)w);
    for (int k = 0; k < r; k++) { out[0] += pad[k]; out[w - 1] += pad[w + r + k]; }
}

/* Separable blur with clamped borders (forward), or its adjoint; tmp is an [h, w] scratch plane and
 * pad a scratch row of w + GS_SSIM_TAPS floats. */
static void gs_blur_plane_any(const float *src, float *tmp, float *pad, float *dst, int h, int w, const float *g,
                              int adjoint)
{
    const int r = GS_SSIM_TAPS / 2;
    if (!adjoint) {
        for (int y = 0; y < h; y++) gs_blur_row(src + (size_t)y * w, pad, tmp + (size_t)y * w, w, g);
        for (int y = 0; y < h; y++) {
            float *d = dst + (size_t)y * w;
            for (int x = 0; x < w; x++) d[x] = 0.f;
            for (int k = -r; k <= r; k++) {
                int yy = y + k;
                yy = yy < 0 ? 0 : (yy >= h ? h - 1 : yy);
                const float *t = tmp + (size_t)yy * w;
                const float gk = g[k + r];
#pragma omp simd
                for (int x = 0; x < w; x++) d[x] += gk * t[x];
            }
        }
        return;
    }
    memset(tmp, 0, sizeof(float) * (size_t)h * w);
    for (int y = 0; y < h; y++) {
        const float *s = src + (size_t)y * w;
        for (int k = -r; k <= r; k++) {
            int yy = y + k;
            yy = yy < 0 ? 0 : (yy >= h ? h - 1 : yy);
            float *t = tmp + (size_t)yy * w;
            const float gk = g[k + r];
#pragma omp simd
            for (int x = 0; x < w; x++) t[x] += gk * s[x];
        }
    }
    for (int y = 0; y < h; y++) gs_blur_row_adjoint(tmp + (size_t)y * w, pad, dst + (size_t)y * w, w, g);
}

double gs_image_loss(int h, int w, int ch, const float *x, const float *y, float lam, int nthreads, float *grad)
{
    if (h <= 0 || w <= 0 || ch < 1) return NAN;
    const size_t np = (size_t)h * w;
    const double inv_n = 1.0 / ((double)np * ch);
    float g[GS_SSIM_TAPS];
    float gsum = 0.f;
    for (int k = 0; k < GS_SSIM_TAPS; k++) {
        float d = (float)(k - GS_SSIM_TAPS / 2);
        g[k] = expf(-d * d / (2.f * 1.5f * 1.5f));
        gsum += g[k];
    }
    for (int k = 0; k < GS_SSIM_TAPS; k++) g[k] /= gsum;

    double l1 = 0.0;
    for (size_t i = 0; i < np * ch; i++) {
        float d = x[i] - y[i];
        l1 += fabsf(d);
        if (grad) grad[i] = (float)((1.0 - lam) * inv_n) * (d > 0.f ? 1.f : (d < 0.f ? -1.f : 0.f));
    }
    if (lam == 0.f) return (1.0 - lam) * l1 * inv_n;

    /* per channel: planes xs ys xx yy xy | mu_x mu_y e_xx e_yy e_xy | tmp | pad row; the input planes
     * are reused for the backward maps. Channels run in parallel. */
    const size_t per_channel = np * 11 + (size_t)w + GS_SSIM_TAPS;
    float *buf = (float *)malloc(sizeof(float) * per_channel * (size_t)ch);
    if (!buf) return NAN;
    const float c1 = 0.01f * 0.01f, c2 = 0.03f * 0.03f;
    double ssim_total = 0.0;
    int nt = gs_threads(nthreads);
    if (nt > ch) nt = ch;
#pragma omp parallel for num_threads(nt) schedule(static, 1) reduction(+ : ssim_total) if (nt > 1)
    for (int k = 0; k < ch; k++) {
        float *base = buf + per_channel * (size_t)k;
        float *px = base, *py = base + np, *pxx = base + 2 * np, *pyy = base + 3 * np, *pxy = base + 4 * np;
        float *mx = base + 5 * np, *my = base + 6 * np, *exx = base + 7 * np, *eyy = base + 8 * np;
        float *exy = base + 9 * np, *tmp = base + 10 * np, *pad = base + 11 * np;
        for (size_t i = 0; i < np; i++) {
            float a = x[i * ch + k], b = y[i * ch + k];
            px[i] = a; py[i] = b; pxx[i] = a * a; pyy[i] = b * b; pxy[i] = a * b;
        }
        gs_blur_plane_any(px, tmp, pad, mx, h, w, g, 0);
        gs_blur_plane_any(py, tmp, pad, my, h, w, g, 0);
        gs_blur_plane_any(pxx, tmp, pad, exx, h, w, g, 0);
        gs_blur_plane_any(pyy, tmp, pad, eyy, h, w, g, 0);
        gs_blur_plane_any(pxy, tmp, pad, exy, h, w, g, 0);
        /* S and its partial derivatives, written over the input planes px (dS/dmu_x), pxx (dS/de_xx),
         * pxy (dS/de_xy); sums per row in float, across rows in double */
        for (int row = 0; row < h; row++) {
            float row_sum = 0.f;
            const size_t i0 = (size_t)row * w;
#pragma omp simd reduction(+ : row_sum)
            for (size_t i = i0; i < i0 + (size_t)w; i++) {
                float ux = mx[i], uy = my[i];
                float a1 = 2.f * ux * uy + c1, a2 = 2.f * (exy[i] - ux * uy) + c2;
                float b1 = ux * ux + uy * uy + c1, b2 = (exx[i] - ux * ux) + (eyy[i] - uy * uy) + c2;
                float s_ = (a1 * a2) / (b1 * b2);
                row_sum += s_;
                px[i] = s_ * (2.f * uy / a1 - 2.f * uy / a2 - 2.f * ux / b1 + 2.f * ux / b2);
                pxx[i] = -s_ / b2;
                pxy[i] = 2.f * s_ / a2;
            }
            ssim_total += row_sum;
        }
        if (grad) {
            gs_blur_plane_any(px, tmp, pad, mx, h, w, g, 1);
            gs_blur_plane_any(pxx, tmp, pad, exx, h, w, g, 1);
            gs_blur_plane_any(pxy, tmp, pad, exy, h, w, g, 1);
            const float scale = (float)(-lam * inv_n);
            for (size_t i = 0; i < np; i++) {
                float a = x[i * ch + k], b = y[i * ch + k];
                grad[i * ch + k] += scale * (mx[i] + 2.f * a * exx[i] + b * exy[i]);
            }
        }
    }
    free(buf);
    return (1.0 - lam) * l1 * inv_n + lam * (1.0 - ssim_total * inv_n);
}

/* Minimal CPython module so that setuptools builds this file as part of the package. */
#ifdef GS_PYTHON_MODULE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static struct PyModuleDef gs_module = {PyModuleDef_HEAD_INIT, "_raster",
                                       "C kernels for gaussvae_ros.core.render (called through ctypes).",
                                       -1, NULL};
PyMODINIT_FUNC PyInit__raster(void) { return PyModule_Create(&gs_module); }
#endif
