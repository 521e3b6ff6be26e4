SELECT 'hello' GLOB 'h*', 'hello' GLOB 'H*', 'hello' GLOB 'h?llo', 'abc' GLOB '[a-c]bc', 'xbc' GLOB '[a-c]bc', 'a' NOT GLOB 'b';
