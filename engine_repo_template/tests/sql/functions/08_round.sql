SELECT round(2.5), round(-2.5), round(3.14159, 2), round(2), round(NULL), round(1.005, 2), round(0.5);
