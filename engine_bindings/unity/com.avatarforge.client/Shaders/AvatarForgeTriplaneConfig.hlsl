// Compile-time values of the triplane export this package renders: triplane.json's shape (GROUPS =
// channels / 4), occupancy grids and march, and decoder outputs. These are the values every current
// AvatarForge export carries; an export whose manifest differs needs them changed here.
#ifndef AVATARFORGE_TRIPLANE_CONFIG_HLSL
#define AVATARFORGE_TRIPLANE_CONFIG_HLSL
#define GROUPS 8
#define MAX_GROUPS 8
#define FINE_RES 128
#define COARSE_RES 64
#define SAMPLES_PER_ROUND 8
#define TRANSMITTANCE_EPS 0.001
#define WEIGHT_EPS 0.001
#define REFINE_OPTICAL 0.25
#define REFINE_BISECTIONS 3
#define DENSITY_SHIFT 1.0
#define SIGMOID_WIDEN 0.001
#endif
