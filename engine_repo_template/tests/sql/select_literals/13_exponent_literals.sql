SELECT 1e3, 1.5e-3, 2E+2, .5, 5., 1e0;
